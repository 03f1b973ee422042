"""One CTranslate2 translation model: OPUS-MT/Marian, an extracted Argos package, NLLB-200 or M2M100.

:class:`CT2Translator` runs one installed model on sentences, with its sentencepiece tokenisers,
greedy decoding bounded by the input length, and a small LRU cache of translated sentences.
Nothing here touches the network; models are directories that exist.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from translator import cores
from translator.errors import LanguageError, ModelError
from translator.models.locate import MtModel
from translator.stages.sentences import join_sentences, split_sentences
from translator.text import one_line

NLLB_CODES: dict[str, str] = {
    "af": "afr_Latn",
    "am": "amh_Ethi",
    "ar": "arb_Arab",
    "as": "asm_Beng",
    "az": "azj_Latn",
    "ba": "bak_Cyrl",
    "be": "bel_Cyrl",
    "bg": "bul_Cyrl",
    "bn": "ben_Beng",
    "bo": "bod_Tibt",
    "bs": "bos_Latn",
    "ca": "cat_Latn",
    "cs": "ces_Latn",
    "cy": "cym_Latn",
    "da": "dan_Latn",
    "de": "deu_Latn",
    "el": "ell_Grek",
    "en": "eng_Latn",
    "es": "spa_Latn",
    "et": "est_Latn",
    "eu": "eus_Latn",
    "fa": "pes_Arab",
    "fi": "fin_Latn",
    "fo": "fao_Latn",
    "fr": "fra_Latn",
    "gl": "glg_Latn",
    "gu": "guj_Gujr",
    "ha": "hau_Latn",
    "he": "heb_Hebr",
    "hi": "hin_Deva",
    "hr": "hrv_Latn",
    "ht": "hat_Latn",
    "hu": "hun_Latn",
    "hy": "hye_Armn",
    "id": "ind_Latn",
    "is": "isl_Latn",
    "it": "ita_Latn",
    "ja": "jpn_Jpan",
    "jw": "jav_Latn",
    "ka": "kat_Geor",
    "kk": "kaz_Cyrl",
    "km": "khm_Khmr",
    "kn": "kan_Knda",
    "ko": "kor_Hang",
    "lb": "ltz_Latn",
    "ln": "lin_Latn",
    "lo": "lao_Laoo",
    "lt": "lit_Latn",
    "lv": "lvs_Latn",
    "mg": "plt_Latn",
    "mi": "mri_Latn",
    "mk": "mkd_Cyrl",
    "ml": "mal_Mlym",
    "mn": "khk_Cyrl",
    "mr": "mar_Deva",
    "ms": "zsm_Latn",
    "mt": "mlt_Latn",
    "my": "mya_Mymr",
    "ne": "npi_Deva",
    "nl": "nld_Latn",
    "nn": "nno_Latn",
    "no": "nob_Latn",
    "oc": "oci_Latn",
    "pa": "pan_Guru",
    "pl": "pol_Latn",
    "ps": "pbt_Arab",
    "pt": "por_Latn",
    "ro": "ron_Latn",
    "ru": "rus_Cyrl",
    "sa": "san_Deva",
    "sd": "snd_Arab",
    "si": "sin_Sinh",
    "sk": "slk_Latn",
    "sl": "slv_Latn",
    "sn": "sna_Latn",
    "so": "som_Latn",
    "sq": "als_Latn",
    "sr": "srp_Cyrl",
    "su": "sun_Latn",
    "sv": "swe_Latn",
    "sw": "swh_Latn",
    "ta": "tam_Taml",
    "te": "tel_Telu",
    "tg": "tgk_Cyrl",
    "th": "tha_Thai",
    "tk": "tuk_Latn",
    "tl": "tgl_Latn",
    "tr": "tur_Latn",
    "tt": "tat_Cyrl",
    "uk": "ukr_Cyrl",
    "ur": "urd_Arab",
    "uz": "uzn_Latn",
    "vi": "vie_Latn",
    "yi": "ydd_Hebr",
    "yo": "yor_Latn",
    "yue": "yue_Hant",
    "zh": "zho_Hans",
}
"""Whisper's ISO 639-1 codes -> NLLB-200 (FLORES-200) language tokens, for every language both know."""

M2M100_CODES: dict[str, str] = {
    code: f"__{code if code != 'jw' else 'jv'}__"
    for code in (
        "af am ar az ba be bg bn br bs ca cs cy da de el en es et fa fi fr gl gu ha he hi hr ht hu "
        "hy id is it ja jw ka kk km kn ko lb ln lo lt lv mg mk ml mn mr ms my ne nl no oc pa pl ps "
        "pt ro ru sd si sk sl so sq sr su sv sw ta th tl tr uk ur uz vi yi yo zh"
    ).split()
}
"""Whisper's codes -> M2M100 language tokens (``__de__``; Whisper's ``jw`` is M2M100's ``jv``)."""


CACHE_SIZE = 512
"""Translated sentences remembered per model."""

_SPECIAL = frozenset({"<s>", "</s>", "<pad>", "<unk>", "<blank>", "<mask>"})
_NLLB_TOKEN = re.compile(r"[a-z]{3}_[A-Z][a-z]{3}")
_M2M_TOKEN = re.compile(r"__[a-z]{2,3}__")


def decode_limit(source_tokens: int) -> int:
    """Upper bound on output tokens for an input of ``source_tokens`` tokens (prefix included).

    A sane translation is at most ~2x its source; the bound keeps a model that loops (a bad or
    mismatched model repeating a token) from spending seconds on one sentence.
    """
    return min(3 * source_tokens + 10, 1024)


class CT2Translator:
    """One CTranslate2 translation model and its sentencepiece tokenisers, ready to translate.

    Layouts (``model.path``):

    * OPUS-MT/Marian converted by ``ct2-transformers-converter``: ``model.bin``, ``source.spm``,
      ``target.spm``; source tokens are the pieces + ``</s>``.
    * Argos ``.argosmodel``, extracted: ``model/`` (the CTranslate2 directory) and one shared
      ``sentencepiece.model`` at the package root (``model.path`` may be the root or ``model/``).
    * NLLB-200 / M2M100: ``model.bin`` and one ``sentencepiece.bpe.model`` (or ``spm.model``);
      source tokens are ``[source token] + pieces + </s>``, and the target token is forced as the
      decoder prefix (and stripped from the output).

    Thread-safe: the cache is locked; CTranslate2 serialises calls on its one translator.
    """

    def __init__(
        self,
        model: MtModel,
        *,
        cpu_threads: int = 0,
        compute_type: str = "int8",
        cache_size: int = CACHE_SIZE,
        beam_size: int = 1,
    ) -> None:
        import ctranslate2  # noqa: PLC0415 - heavy import, only when a model is really loaded
        import sentencepiece  # noqa: PLC0415 - heavy import, only when a model is really loaded

        self.model = model
        self.beam_size = beam_size
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.batches = 0
        """Number of calls into CTranslate2 (cache misses are batched into one call)."""

        root = Path(model.path)
        if not root.is_dir():
            raise ModelError(f"{root}: translation model directory not found; reinstall {model.name} or fix the path")
        self.layout, ct2_dir, source_spm, target_spm = self._find_layout(root)
        if not (ct2_dir / "model.bin").is_file():
            raise ModelError(f"{ct2_dir / 'model.bin'}: missing from the translation model {model.name}; reinstall it")

        def load_spm(path: Path) -> sentencepiece.SentencePieceProcessor:
            try:
                return sentencepiece.SentencePieceProcessor(model_file=str(path))
            except (OSError, RuntimeError) as e:
                raise ModelError(f"{path}: cannot read the sentencepiece model ({one_line(e)}); reinstall {model.name}") from e

        self._source_sp = load_spm(source_spm)
        self._target_sp = self._source_sp if target_spm == source_spm else load_spm(target_spm)
        try:
            self._translator = ctranslate2.Translator(
                str(ct2_dir),
                device="cpu",
                compute_type=compute_type,
                inter_threads=1,
                intra_threads=cores.threads(cpu_threads),
            )
        except (RuntimeError, ValueError, OSError) as e:
            raise ModelError(
                f"{ct2_dir}: cannot load the translation model ({one_line(e)}); the files are corrupt or incomplete, reinstall {model.name}"
            ) from e
        self.ct2_dir = ct2_dir

    def _find_layout(self, root: Path) -> tuple[str, Path, Path, Path]:
        """(layout, CTranslate2 dir, source spm, target spm), naming the first missing file."""
        family = self.model.family
        argos_root = None
        if (root / "model").is_dir() and ((root / "sentencepiece.model").exists() or (root / "metadata.json").exists()):
            argos_root = root
        elif root.name == "model" and (root.parent / "sentencepiece.model").is_file():
            argos_root = root.parent
        if argos_root is not None and family == "marian":
            spm_file = argos_root / "sentencepiece.model"
            if not spm_file.is_file():
                raise ModelError(f"{spm_file}: missing from the Argos package {self.model.name}; reinstall it")
            return "argos", argos_root / "model", spm_file, spm_file
        if family == "marian":
            for name in ("source.spm", "target.spm"):
                if not (root / name).is_file():
                    raise ModelError(f"{root / name}: missing from the OPUS-MT model {self.model.name}; reinstall it")
            return "marian", root, root / "source.spm", root / "target.spm"
        for name in ("sentencepiece.bpe.model", "spm.model", "sentencepiece.model"):
            if (root / name).is_file():
                return family, root, root / name, root / name
        raise ModelError(f"{root / 'sentencepiece.bpe.model'}: missing from the {family} model {self.model.name}; reinstall it")

    # -- tokens ----------------------------------------------------------------------------------

    def _language_token(self, code: str) -> str:
        table = NLLB_CODES if self.layout == "nllb" else M2M100_CODES
        token = table.get(code)
        if token is None:
            raise LanguageError(f"{self.model.name} has no language token for {code!r}; use a model that serves {code}")
        return token

    def source_tokens(self, sentence: str, source: str) -> list[str]:
        pieces = self._source_sp.encode(sentence, out_type=str)
        if self.layout == "argos":
            return pieces
        if self.layout == "marian":
            return pieces + ["</s>"]
        return [self._language_token(source), *pieces, "</s>"]

    def _target_prefix(self, target: str) -> list[str] | None:
        return None if self.layout in ("marian", "argos") else [self._language_token(target)]

    def _clean(self, tokens: list[str]) -> list[str]:
        """Output tokens without special and language tokens (NLLB/M2M100 echo the prefix)."""
        out = [t for t in tokens if t not in _SPECIAL]
        if self.layout in ("nllb", "m2m100"):
            pattern = _NLLB_TOKEN if self.layout == "nllb" else _M2M_TOKEN
            out = [t for t in out if not pattern.fullmatch(t)]
        return out

    def _check_pair(self, source: str, target: str) -> None:
        if not self.model.serves(source, target):
            raise LanguageError(f"{self.model.name} does not translate {source} to {target}")

    # -- translation -----------------------------------------------------------------------------

    def translate_pieces(self, sentences: Sequence[str], source: str, target: str) -> list[list[str]]:
        """Target pieces for each sentence, uncached: one CTranslate2 batch, greedy by default."""
        self._check_pair(source, target)
        if not sentences:
            return []
        batch = [self.source_tokens(s, source) for s in sentences]
        prefix = self._target_prefix(target)
        limit = max(decode_limit(len(tokens)) for tokens in batch)
        with self._lock:
            self.batches += 1
        results = self._translator.translate_batch(
            batch,
            target_prefix=[prefix] * len(batch) if prefix else None,
            beam_size=self.beam_size,
            max_decoding_length=limit,
            replace_unknowns=True,
        )
        return [self._clean(r.hypotheses[0]) for r in results]

    def translate_sentences(self, sentences: Sequence[str], source: str, target: str) -> list[str]:
        """One translation per sentence (no splitting); cached ones cost nothing, the rest go in one batch."""
        self._check_pair(source, target)
        out: list[str | None] = [None] * len(sentences)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, sentence in enumerate(sentences):
                sentence = sentence.strip()
                if not sentence:
                    out[i] = ""
                    continue
                key = (sentence, source, target)
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
                    self.hits += 1
                    out[i] = cached
                else:
                    self.misses += 1
                    todo.setdefault(sentence, []).append(i)
        if todo:
            texts = list(todo)
            pieces = self.translate_pieces(texts, source, target)
            with self._lock:
                for sentence, toks in zip(texts, pieces, strict=True):
                    translated = self._target_sp.decode(toks).strip() if toks else ""
                    for i in todo[sentence]:
                        out[i] = translated
                    self._cache[(sentence, source, target)] = translated
                    self._cache.move_to_end((sentence, source, target))
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return [s or "" for s in out]

    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        """Translate each text: split into sentences, translate them all as one batch, rejoin."""
        split = [split_sentences(t, source) for t in texts]
        flat = self.translate_sentences([s for sentences in split for s in sentences], source, target)
        out, k = [], 0
        for sentences in split:
            out.append(join_sentences(flat[k : k + len(sentences)], target))
            k += len(sentences)
        return out

    def cache_info(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "size": len(self._cache), "maxsize": self.cache_size}

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def warm_up(self) -> None:
        """One short uncached translation, so the first real sentence is as fast as later ones."""
        source = self.model.sources[0]
        target = next((t for t in self.model.targets if t != source), None)
        if target is not None:
            self.translate_pieces(["Hello."], source, target)
