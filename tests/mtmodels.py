"""Builds tiny but real CTranslate2 translation models for tests: random weights, no torch.

The models have the exact on-disk layout of the real ones (what ``ct2-transformers-converter``
writes for OPUS-MT/Marian, NLLB-200 and M2M100, and an extracted Argos ``.argosmodel``), real
sentencepiece tokenisers trained on a few corpus lines, and CTranslate2 ``model.bin`` files built
from CTranslate2's own model specs. They translate into junk, deterministically, in milliseconds.

Only the corpus beside the project is read (never copied); without it a built-in text is used.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import sentencepiece as spm
from ctranslate2.specs import common_spec, transformer_spec

from translator.models.locate import MT_INFO, MtModel, read_mt_model

CORPUS_TEXT = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "text"

D_MODEL = 64
FFN = 128
LAYERS = 2
HEADS = 4
VOCAB = 256
"""sentencepiece vocabulary size of every test tokeniser."""

SPM_SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")
"""sentencepiece's control pieces, which each model family places in its vocabulary its own way."""

EOS_BIAS = -1.0e4
"""Output bias of ``</s>``: random weights would otherwise stop at once (an empty translation) or
at a random point. With it every translation runs to the decoding limit, which is what the
bounded-decoding test wants to see; pass ``eos_bias=0.0`` for a model that may stop on its own."""

NLLB_TOKENS = {
    "en": "eng_Latn",
    "de": "deu_Latn",
    "es": "spa_Latn",
    "fr": "fra_Latn",
    "it": "ita_Latn",
    "pt": "por_Latn",
    "ru": "rus_Cyrl",
    "zh": "zho_Hans",
    "ja": "jpn_Jpan",
    "ko": "kor_Hang",
}

_FALLBACK_TEXT = (
    "The quick brown fox jumps over the lazy dog. We will meet at the station tomorrow morning. "
    "Der schnelle braune Fuchs springt über den faulen Hund. Wir treffen uns morgen früh am Bahnhof. "
    "El rápido zorro marrón salta sobre el perro perezoso. Nos vemos mañana por la mañana en la estación. "
    "Le renard brun rapide saute par-dessus le chien paresseux. Nous nous verrons demain matin à la gare."
)


# --- text and tokenisers ------------------------------------------------------------------------


@functools.cache
def corpus_lines(language: str) -> tuple[str, ...]:
    """Sentences in ``language`` from the shared corpus (``xx-yy.tsv``: source xx, reference yy)."""
    lines: list[str] = []
    if CORPUS_TEXT.is_dir():
        for tsv in sorted(CORPUS_TEXT.glob("*-*.tsv")):
            a, _, b = tsv.stem.partition("-")
            column = "source" if a == language else "reference" if b == language else None
            if column is None:
                continue
            with open(tsv, encoding="utf-8", newline="") as f:
                lines.extend(r[column] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r.get(column))
    if not lines:
        lines = [s for s in re.split(r"(?<=\.)\s+", _FALLBACK_TEXT)]
    return tuple(dict.fromkeys(lines))


@functools.cache
def spm_model(languages: tuple[str, ...], vocab_size: int = VOCAB) -> bytes:
    """A trained sentencepiece (unigram) model for the languages' corpus lines (cached per session)."""
    lines = [line for lang in languages for line in corpus_lines(lang)]
    if len(lines) < 50:  # too little text for the vocabulary size: repeat it
        lines = lines * (50 // max(len(lines), 1) + 1)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=0.9995,
        hard_vocab_limit=False,
        minloglevel=2,
        num_threads=1,
    )
    return buf.getvalue()


def spm_pieces(model: bytes) -> list[str]:
    sp = spm.SentencePieceProcessor(model_proto=model)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def _unique(tokens: list[str]) -> list[str]:
    return list(dict.fromkeys(tokens))


# --- CTranslate2 model from a spec --------------------------------------------------------------


def _shape(scope: str, attr: str, d: int, ffn: int, v_src: int, v_tgt: int) -> tuple[int, ...] | None:
    """Shape of the weight ``scope/attr`` of a Transformer spec (None: leave it unset)."""
    parts = scope.split("/")
    last = parts[-1] if parts else ""
    if last.startswith("embeddings"):
        if attr != "weight":
            return None
        return (v_src if parts[0] == "encoder" else v_tgt, d)
    if last == "projection":
        return (v_tgt, d) if attr == "weight" else (v_tgt,)
    if attr in ("gamma", "beta"):
        return (d,)
    if last.startswith("linear"):
        index = last.rsplit("_", 1)[-1]
        parent = parts[-2]
        if parent == "ffn":
            rows, cols = (ffn, d) if last == "linear_0" else (d, ffn)
        elif parent == "self_attention":
            rows, cols = (3 * d, d) if index == "0" else (d, d)
        elif parent == "attention":
            rows, cols = (2 * d, d) if index == "1" else (d, d)
        else:
            rows, cols = d, d
        return (rows, cols) if attr == "weight" else (rows,)
    return None


def _fill_weights(spec: transformer_spec.TransformerSpec, v_src: int, v_tgt: int, seed: int) -> None:
    """Every weight the spec declares, as small random float32 arrays of the right shape."""
    rng = np.random.default_rng(seed)
    layers: list[tuple[object, str]] = []

    def walk(layer: object, scope: str) -> None:
        for name, value in list(vars(layer).items()):
            if name.startswith("_"):
                continue
            if isinstance(value, list):
                for i, elem in enumerate(value):
                    walk(elem, f"{scope}/{name}_{i}" if scope else f"{name}_{i}")
            elif hasattr(value, "_visit"):
                walk(value, f"{scope}/{name}" if scope else name)
            else:
                layers.append((layer, f"{scope}\0{name}"))

    walk(spec, "")
    for layer, key in layers:
        scope, attr = key.split("\0")
        value = getattr(layer, attr)
        settable = value is None or (attr == "bias" and isinstance(value, str))
        if not settable:
            continue
        shape = _shape(scope, attr, D_MODEL, FFN, v_src, v_tgt)
        if shape is None:
            continue
        if attr == "gamma":
            array = np.ones(shape, dtype=np.float32)
        elif attr in ("beta", "bias"):
            array = np.zeros(shape, dtype=np.float32)
        else:
            array = rng.normal(0.0, 0.1, size=shape).astype(np.float32)
        setattr(layer, attr, array)


def save_ct2(
    out: Path,
    source_vocab: list[str],
    target_vocab: list[str],
    *,
    pre_norm: bool,
    activation: common_spec.Activation,
    decoder_start_token: str,
    zero_start: bool = False,
    eos_bias: float = EOS_BIAS,
    seed: int = 0,
) -> Path:
    """Write a random-weight CTranslate2 Transformer (int8) with these vocabularies into ``out``."""
    spec = transformer_spec.TransformerSpec.from_config(LAYERS, HEADS, pre_norm=pre_norm, activation=activation)
    _fill_weights(spec, len(source_vocab), len(target_vocab), seed)
    bias = np.zeros(len(target_vocab), dtype=np.float32)
    bias[target_vocab.index("</s>")] = eos_bias
    spec.decoder.projection.bias = bias
    if zero_start:
        spec.decoder.start_from_zero_embedding = True
    spec.register_source_vocabulary(source_vocab)
    spec.register_target_vocabulary(target_vocab)
    spec.config.decoder_start_token = decoder_start_token
    spec.config.unk_token = "<unk>"
    spec.config.eos_token = "</s>"
    spec.validate()
    spec.optimize(quantization="int8")
    out.mkdir(parents=True, exist_ok=True)
    spec.save(str(out))
    return out


def _write_info(path: Path, name: str, family: str, sources: list[str], targets: list[str]) -> None:
    info = {"name": name, "family": family, "sources": sources, "targets": targets}
    (path / MT_INFO).write_text(json.dumps(info, indent=1), encoding="utf-8")


# --- public builders ----------------------------------------------------------------------------


def build_marian(path: Path, source: str, target: str, *, eos_bias: float = EOS_BIAS, info: bool = True) -> MtModel:
    """An OPUS-MT model as ``ct2-transformers-converter`` writes it: model.bin, the shared
    vocabulary, ``source.spm`` and ``target.spm``; plus ``model-info.json`` unless ``info`` is False."""
    path = Path(path)
    src_spm, tgt_spm = spm_model((source,)), spm_model((target,))
    pieces = [p for p in spm_pieces(src_spm) + spm_pieces(tgt_spm) if p not in SPM_SPECIALS]
    vocab = _unique(["</s>", "<unk>"] + pieces)  # Marian: </s>=0, <unk>=1; CT2 drops <pad>
    save_ct2(
        path,
        vocab,
        vocab,
        pre_norm=False,
        activation=common_spec.Activation.SWISH,
        decoder_start_token="</s>",
        zero_start=True,
        eos_bias=eos_bias,
        seed=zlib.crc32(f"{source}-{target}".encode()),
    )
    (path / "source.spm").write_bytes(src_spm)
    (path / "target.spm").write_bytes(tgt_spm)
    name = f"opus-mt-{source}-{target}"
    if info:
        _write_info(path, name, "marian", [source], [target])
        return read_mt_model(path)
    return MtModel(name, path, "marian", (source,), (target,))


def build_multilingual(path: Path, languages: list[str], *, family: str = "nllb", eos_bias: float = EOS_BIAS) -> MtModel:
    """An NLLB-200 (``deu_Latn`` tokens) or M2M100 (``__de__`` tokens) model with one shared
    ``sentencepiece.bpe.model``, serving every direction between ``languages``."""
    path = Path(path)
    model = spm_model(tuple(sorted(languages)))
    pieces = [p for p in spm_pieces(model) if p not in SPM_SPECIALS]
    if family == "nllb":
        lang_tokens = [NLLB_TOKENS[code] for code in languages]
        name = "nllb-200-distilled-600M"
    elif family == "m2m100":
        lang_tokens = [f"__{code}__" for code in languages]
        name = "m2m100_418M"
    else:
        raise ValueError(family)
    vocab = _unique(["<s>", "<pad>", "</s>", "<unk>"] + pieces + lang_tokens + ["<mask>"])
    save_ct2(
        path,
        vocab,
        vocab,
        pre_norm=True,
        activation=common_spec.Activation.RELU,
        decoder_start_token="</s>",
        eos_bias=eos_bias,
        seed=len(languages),
    )
    (path / "sentencepiece.bpe.model").write_bytes(model)
    _write_info(path, name, family, list(languages), list(languages))
    return read_mt_model(path)


def build_nllb(path: Path, languages: list[str], *, eos_bias: float = EOS_BIAS) -> MtModel:
    return build_multilingual(path, languages, family="nllb", eos_bias=eos_bias)


def build_m2m100(path: Path, languages: list[str], *, eos_bias: float = EOS_BIAS) -> MtModel:
    return build_multilingual(path, languages, family="m2m100", eos_bias=eos_bias)


def build_argos(path: Path, source: str, target: str, *, eos_bias: float = EOS_BIAS) -> MtModel:
    """An Argos Translate package: ``model/`` (CTranslate2), one ``sentencepiece.model`` and
    ``metadata.json`` at the root. A path ending in ``.argosmodel`` gets the zipped package (one
    top-level directory, as Argos ships them); the MtModel returned then describes an extracted copy
    next to it. No ``model-info.json`` is written: Argos packages do not have one."""
    path = Path(path)
    if path.suffix == ".argosmodel":
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / f"translate-{source}_{target}"
            build_argos(root, source, target, eos_bias=eos_bias)
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
                for f in sorted(root.rglob("*")):
                    z.write(f, f.relative_to(tmp))
            extracted = path.with_suffix("")
            shutil.rmtree(extracted, ignore_errors=True)
            shutil.copytree(root, extracted)
        return MtModel(f"argos-{source}-{target}", extracted, "marian", (source,), (target,))
    model = spm_model(tuple(sorted({source, target})))
    vocab = ["<unk>", "<blank>", "<s>", "</s>"] + [p for p in spm_pieces(model) if p not in SPM_SPECIALS]
    save_ct2(
        path / "model",
        _unique(vocab),
        _unique(vocab),
        pre_norm=True,
        activation=common_spec.Activation.RELU,
        decoder_start_token="<s>",
        eos_bias=eos_bias,
        seed=7,
    )
    (path / "sentencepiece.model").write_bytes(model)
    meta = {
        "package_version": "1.0",
        "argos_version": "1.5",
        "from_code": source,
        "to_code": target,
        "from_name": source,
        "to_name": target,
        "type": "translate",
    }
    (path / "metadata.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return MtModel(f"argos-{source}-{target}", path, "marian", (source,), (target,))
