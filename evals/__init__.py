"""How to measure: GSM8K, HumanEval (sandboxed), MT-Bench (judged), hidden-state t-SNE."""
