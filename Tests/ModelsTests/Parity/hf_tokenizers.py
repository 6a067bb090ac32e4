"""Test-only bridge to Hugging Face `tokenizers` (the reference byte-level BPE).

  hf_tokenizers.py IN.json OUT.json
IN {"mode": "encode", "path": tokenizer.json, "texts": [...]}           -> OUT {"ids": [[...], ...], "decoded": [...]}
IN {"mode": "train", "path": out.json, "corpus": [...], "vocab_size": N,
    "special": [...], "qwen_split": bool}                                  -> writes a tokenizer.json, OUT {"ok": true}
"""
import json
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

# Qwen2's pre-tokenisation regex (tokenizer.json of Qwen2.5).
QWEN_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def main(inp, outp):
    spec = json.load(open(inp))
    if spec["mode"] == "encode":
        tok = Tokenizer.from_file(spec["path"])
        ids = [tok.encode(t, add_special_tokens=False).ids for t in spec["texts"]]
        json.dump({"ids": ids, "decoded": [tok.decode(i, skip_special_tokens=False) for i in ids]}, open(outp, "w"))
        return
    tok = Tokenizer(models.BPE())
    if spec.get("qwen_split"):
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=spec["vocab_size"], special_tokens=spec["special"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(spec["corpus"], trainer)
    tok.save(spec["path"])
    json.dump({"ok": True}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
