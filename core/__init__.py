"""The base layer every other package stands on, and which imports none of them: model presets and
loading (model), run storage with its leases (storage, s3_conditional), the cache folders
(cache), training settings (settings), content-hash ids of stages and runs (ids), what a source or
model contains (content) and the typed contracts that cross processes (contracts).
"""
