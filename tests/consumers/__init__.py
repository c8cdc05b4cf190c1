"""Real consumers of streamgrade's training exports, as a test harness.

Each module takes export rows and returns :class:`consumers.rows.Problem` records
(never raises on bad rows), so a test can grade a whole file and report every problem
with the row's session:

- :mod:`.templates`: chat templates of Qwen2.5, Llama 3.3, DeepSeek-V3.1 and gpt-oss,
  rendered by transformers' ``apply_chat_template`` over a tokenizer built locally;
- :mod:`.llama_factory`: LLaMA-Factory 0.9.5's own ShareGPT dataset converter, run in its
  own virtualenv (see ``.ci/run``);
- :mod:`.openai_rules`: OpenAI's fine-tuning rules for chat (SFT) and preference (DPO)
  rows, plus the openai SDK's typed message parameters.
"""
