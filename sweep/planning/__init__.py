"""A sweep before it runs: stage and run ids, stages shared across runs, tokens and GPU hours
(the dry run), and the content identities and test items resolved once at its start."""
