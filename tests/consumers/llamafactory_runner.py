"""Run LLaMA-Factory's own ShareGPT dataset code over a JSONL file; print one JSON line per row.

Runs in LLaMA-Factory's virtualenv (``llamafactory==0.9.5``; see ``.ci/run``), not in
streamgrade's: ``python llamafactory_runner.py FILE DATASET_INFO_JSON NAME``. Uses, from
the installed package (hiyouga/LlamaFactory, Apache-2.0):

- ``data/parser.py`` ``get_dataset_list``: our dataset_info entry, parsed as LLaMA-Factory
  parses data/dataset_info.json;
- ``data/converter.py`` ``get_dataset_converter("sharegpt", ...)``: the
  ``SharegptDatasetConverter`` that ``align_dataset`` maps over every row; a row it cannot
  align comes back with an empty ``_prompt`` and ``_response`` (it logs "Skipping this
  abnormal example");
- ``data/formatter.py`` ``FunctionFormatter`` (tool format ``default``, with the thought and
  tool-call words ``Template._encode`` passes by default): how a template encodes a
  ``function_call`` turn (it raises on a value that is not JSON once a ``<think>`` part
  is taken off);
- ``data/tool_utils.py`` ``get_tool_utils(...).tool_formatter``: how the ``default`` and
  ``qwen`` tool formats render the ``tools`` column;
- ``data/mm_plugin.py`` ``BasePlugin._validate_messages``: the number of ``<image>``
  tags must equal the number of images; images must exist under ``media_dir`` (the
  JSONL's folder) and open with Pillow.

Rows are loaded as LLaMA-Factory's loader loads a local JSON file
(``datasets.load_dataset("json", data_files=...)``, so a key missing from a row reads as
null, as in training). Output: one line per row, ``LFROW {"line", "aligned", "turns",
"problems": [[kind, detail], ...]}`` (the prefix keeps LLaMA-Factory's own log lines apart),
or one ``LFROW {"line": 0, "problems": [["load-error", ...]]}`` when the file does not load.
"""

from __future__ import annotations

import json
import logging
import os
import sys

# this script's folder (tests/consumers/) must not shadow installed packages
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


# what Template._encode passes to the function formatter: register_template's defaults
# (data/template.py); Llama2Template (llama2/mistral-style templates) passes neither, so a
# thought before a call only parses with the other templates
THOUGHT_WORDS = ("<think>\n", "\n</think>\n\n")
TOOL_CALL_WORDS = ("<tool_call>", "</tool_call>")


def emit(result: dict) -> None:
    print("LFROW " + json.dumps(result), flush=True)


def main(path: str, info_json: str, name: str) -> None:
    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.formatter import FunctionFormatter
    from llamafactory.data.mm_plugin import get_mm_plugin
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.data.tool_utils import get_tool_utils
    from llamafactory.hparams import DataArguments

    logging.disable(logging.WARNING)  # the converter logs every skipped row; we report them
    folder = os.path.dirname(os.path.abspath(path))
    (attr,) = get_dataset_list([name], json.loads(info_json))
    converter = get_dataset_converter(attr.formatting, attr, DataArguments(dataset_dir=folder, media_dir=folder))
    fn_formatter = FunctionFormatter(slots=["{{content}}"], tool_format="default")
    plugin = get_mm_plugin("base", image_token="<image>")
    import tempfile

    from datasets import load_dataset

    os.environ["HF_DATASETS_OFFLINE"] = "1"
    try:
        with tempfile.TemporaryDirectory() as cache:
            rows = list(load_dataset("json", data_files=[path], split="train", cache_dir=cache))
    except Exception as exc:  # noqa: BLE001 - a file the loader rejects is the finding
        emit({"line": 0, "aligned": False, "turns": 0, "problems": [["load-error", f"{type(exc).__name__}: {exc}"[:300]]]})
        return
    lines = [n for n, text in enumerate(open(path, encoding="utf-8"), 1) if text.strip()]
    for n, row in zip(lines, rows):
        if True:
            problems: list[list[str]] = []
            try:
                out = converter(row)
            except Exception as exc:  # noqa: BLE001 - the converter's exception is the finding
                emit({"line": n, "aligned": False, "turns": 0,
                      "problems": [["converter-error", f"{type(exc).__name__}: {exc}"[:300]]]})
                continue
            aligned = bool(out["_prompt"]) and bool(out["_response"])
            if not aligned:
                problems.append(["row-skipped", "SharegptDatasetConverter drops the row (invalid role order "
                                 "or message count: LLaMA-Factory logs 'Skipping this abnormal example')"])
            turns = out["_prompt"] + out["_response"]
            for i, m in enumerate(turns):
                if m["role"] == "function":
                    try:
                        fn_formatter.apply(content=m["content"], thought_words=THOUGHT_WORDS,
                                           tool_call_words=TOOL_CALL_WORDS)
                    except Exception as exc:  # noqa: BLE001
                        problems.append(["function-call-unparsed", f"turn {i}: {type(exc).__name__}: {exc}"[:300]])
            if out["_tools"]:
                for fmt in ("default", "qwen"):
                    try:
                        get_tool_utils(fmt).tool_formatter(json.loads(out["_tools"]))
                    except Exception as exc:  # noqa: BLE001
                        problems.append(["tools-unformatted", f"{fmt} tool format: {type(exc).__name__}: {exc}"[:300]])
            images = out["_images"] or []
            if attr.images or any("<image>" in m["content"] for m in turns):
                try:
                    plugin._validate_messages(turns, images, [], [])
                except ValueError as exc:
                    problems.append(["image-count", str(exc)[:200]])
                for img in images:
                    if not isinstance(img, str) or not os.path.isfile(img):
                        problems.append(["image-missing", f"{img!r} is not a file under {folder}"])
                        continue
                    try:
                        from PIL import Image

                        with Image.open(img) as im:
                            im.verify()
                    except Exception as exc:  # noqa: BLE001
                        problems.append(["image-unreadable", f"{img}: {type(exc).__name__}: {exc}"[:200]])
            emit({"line": n, "aligned": aligned, "turns": len(turns), "problems": problems})


if __name__ == "__main__":
    main(*sys.argv[1:4])
