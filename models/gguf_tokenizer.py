"""The tokenizer a GGUF file describes, rebuilt as a `tokenizers.Tokenizer`.

Byte-level BPE ("gpt2") splits text first with the regexes llama.cpp names for each
`tokenizer.ggml.pre` (llama-vocab.cpp), applied one after the other as llama.cpp does;
SentencePiece ("llama") is rebuilt from its scores with byte fallback. Control tokens stay
whole. llama.cpp itself is the reference (tests/test_llama_cpp.py).
"""

from __future__ import annotations

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from lenscope.errors import BadInput

CONTROL, USER_DEFINED = 3, 4  # llama.cpp token types

# llama.cpp's pre-tokenizer regexes (llama-vocab.cpp, llm_tokenizer_bpe), each list applied in
# order: every regex splits every piece the ones before it left. Their original spelling from
# tokenizer.json where llama.cpp adapted it to its own regex engine.
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN35 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_UPPER, _LOWER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
TEKKEN = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*|\p{{N}}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_CONTRACTION = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
GPT4O = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+{_CONTRACTION}|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*{_CONTRACTION}"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SEED_CODER = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
DEEPSEEK_CODER = [r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", r"[一-龥ࠀ-一가-퟿]+", r"\p{N}"]
DEEPSEEK3 = [r"\p{N}{1,3}", r"[一-龥぀-ゟ゠-ヿ]+",
             (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
             r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")]
# llama.cpp takes a word that is in the vocabulary whole (ignore_merges) and adds BOS unless
# the file says otherwise for these (llama-vocab.cpp, per tokenizer_pre)
LLAMA3_FAMILY = ("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "lfm2")
IGNORE_MERGES = (*LLAMA3_FAMILY, "tekken", "glm4")
ADD_BOS = (*LLAMA3_FAMILY, "tekken")
PRE_TOKENIZERS: dict[str, list[str]] = {
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    **{k: [GPT2] for k in ("gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "roberta-bpe", "exaone4", "gigachat",
                     "a.x-4.0", "mellum")},
    **{k: [r"\p{N}", GPT2] for k in ("starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b")},
    **{k: [LLAMA3] for k in ("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "lfm2", "dbrx",
                     "smaug-bpe", "chatglm-bpe", "glm4")},
    **{k: [QWEN2] for k in ("qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan", "grok-2")},
    "qwen35": [QWEN35],
    "tekken": [TEKKEN],
    **{k: [GPT4O] for k in ("gpt-4o", "llama4", "minimax-m2")},
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
    "deepseek-coder": DEEPSEEK_CODER,
    "deepseek-v3": DEEPSEEK3,
    "seed-coder": [SEED_CODER],
    **{k: [r" ?[^(\s|.,!?…。，、।۔،)]+"] for k in ("bloom", "poro-chat", "gpt3-finnish")},
    "viking": [r" ?[^(\s|.,!?…。，、।۔،)]+", r"\p{N}"],
}

def _spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """SentencePiece BPE keeps scores, not merges: every split of a token into two vocabulary
    pieces is a merge, ranked by the merged token's score (llama.cpp merges the best first)."""
    ids = {t: i for i, t in enumerate(tokens)}
    ranked = []
    for token, i in ids.items():
        if types and types[i] != 1:
            continue
        for k in range(1, len(token)):
            a, b = token[:k], token[k:]
            if a in ids and b in ids:
                ranked.append((-scores[i], ids[a], ids[b], a, b))
    ranked.sort()
    return [(a, b) for *_, a, b in ranked]


def build_tokenizer(meta: dict):
    """A `tokenizers.Tokenizer` equal to the one the GGUF metadata describes."""
    kind = meta.get("tokenizer.ggml.model")
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = meta.get("tokenizer.ggml.token_type") or []
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        seen: dict[str, int] = {}
        i, first = next((i, seen[t]) for i, t in enumerate(tokens) if seen.setdefault(t, i) != i)
        raise BadInput(f"GGUF tokenizer: token {tokens[i]!r:.40} appears twice (ids {first} and {i})")
    for name in ("bos", "eos", "unknown"):
        token_id = meta.get(f"tokenizer.ggml.{name}_token_id")
        if token_id is not None and not (isinstance(token_id, int) and 0 <= token_id < len(tokens)):
            raise BadInput(f"GGUF tokenizer: {name} token id {token_id!r:.20} is not in the {len(tokens)}-token "
                           f"vocabulary")
    if kind == "gpt2":
        pre = meta.get("tokenizer.ggml.pre", "default")
        regexes = PRE_TOKENIZERS.get(pre)
        if regexes is None:
            raise BadInput(f"GGUF tokenizer pre-tokenizer '{pre}' is not supported "
                           f"(supported: {', '.join(sorted(PRE_TOKENIZERS))})")
        if "tokenizer.ggml.merges" not in meta:
            raise BadInput("GGUF tokenizer: a gpt2 (byte-level BPE) vocabulary without merges")
        merges = [tuple(m.split(" ")) for m in meta["tokenizer.ggml.merges"]]
        tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=pre in IGNORE_MERGES))
        splits = [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in regexes]
        tok.pre_tokenizer = pre_tokenizers.Sequence(splits + [pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                                       use_regex=False)])
        tok.decoder = decoders.ByteLevel()
        post = [processors.ByteLevel(trim_offsets=False)]
        add_bos_default = pre in ADD_BOS
    elif kind == "llama":
        scores = meta.get("tokenizer.ggml.scores")
        if scores is None or len(scores) != len(tokens):
            raise BadInput(f"GGUF tokenizer: a SentencePiece (llama) vocabulary needs one score per token "
                           f"({0 if scores is None else len(scores)} scores, {len(tokens)} tokens)")
        unk = tokens[meta.get("tokenizer.ggml.unknown_token_id", 0)]
        tok = Tokenizer(models.BPE(vocab, _spm_merges(tokens, scores, types), unk_token=unk,
                                   fuse_unk=True, byte_fallback=True))
        prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
        # llama.cpp prefixes a space to every text fragment that follows a special token (or
        # starts the text) and spells spaces as U+2581: a normalizer does the same per fragment
        spaces = [normalizers.Replace(" ", "\u2581")]
        tok.normalizer = normalizers.Sequence(([normalizers.Prepend("\u2581")] if prefix else []) + spaces)
        steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
        tok.decoder = decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if prefix else []))
        post = []
        add_bos_default = True
    else:
        raise BadInput(f"GGUF tokenizer model '{kind}' is not supported (supported: gpt2, llama)")

    # control tokens (<|im_start|>) and user-defined ones stay whole, as llama.cpp keeps them
    special = [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == CONTROL]
    user = [AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types) if k == USER_DEFINED]
    tok.add_special_tokens(special)
    tok.add_tokens(user)
    if tok.get_vocab_size(with_added_tokens=True) != len(tokens):
        raise BadInput(f"GGUF tokenizer: {len(tokens)} tokens in the file, {tok.get_vocab_size()} rebuilt")

    flags = {name: bool(meta.get(f"tokenizer.ggml.add_{name}_token", name == "bos" and add_bos_default))
             for name in ("bos", "eos")}
    ends = {name: tokens[meta[f"tokenizer.ggml.{name}_token_id"]] for name in ("bos", "eos")
            if f"tokenizer.ggml.{name}_token_id" in meta}
    if flags["bos"] or flags["eos"]:
        first = [ends["bos"]] if flags["bos"] and "bos" in ends else []
        last = [ends["eos"]] if flags["eos"] and "eos" in ends else []
        post.append(processors.TemplateProcessing(
            single=" ".join(first + ["$A"] + last),
            pair=" ".join(first + ["$A"] + last + first + ["$B:1"] + last),
            special_tokens=[(t, vocab[t]) for t in dict.fromkeys(first + last)],
        ))
    if post:
        tok.post_processor = processors.Sequence(post) if len(post) > 1 else post[0]
    return tok, flags


def tokenizer_config(meta: dict, flags: dict) -> dict:
    tokens = meta["tokenizer.ggml.tokens"]
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
              "add_bos_token": flags["bos"], "add_eos_token": flags["eos"]}
    for name, key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding")):
        if (i := meta.get(f"tokenizer.ggml.{key}_token_id")) is not None and i < len(tokens):
            config[f"{name}_token"] = tokens[i]
    if template := meta.get("tokenizer.chat_template"):
        config["chat_template"] = template
    return config
