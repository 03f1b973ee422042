"""Text translation: CTranslate2 models, route planning, and the pipeline's translator stage.

Three layers, each usable alone:

* :class:`CT2Translator` runs one installed CTranslate2 model (OPUS-MT/Marian, an extracted Argos
  package, NLLB-200 or M2M100) on sentences, with its sentencepiece tokenisers, greedy decoding
  bounded by the input length, and a small LRU cache of translated sentences.
* :func:`plan_route` decides *how* a language pair is translated (``same``, ``direct``, ``pivot``
  through English, or ``whisper``: the recognizer's own translate task) from the installed models.
  It is the only place that decision is made; the stage and the recognizer both ask it.
* :class:`TextTranslator` executes a route (loading each model once, shared between routes) and
  :class:`TranslatorStage` is the pipeline stage: ``feed(Transcript) -> Translation | Notice``.

Nothing here touches the network; models are directories that exist.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from translator.errors import LanguageError, ModelError
from translator.events import Notice, Transcript, Translation
from translator.languages import check as check_language
from translator.models.locate import MtModel

# --- language tables ----------------------------------------------------------------------------

NLLB_CODES: dict[str, str] = {
    "af": "afr_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "as": "asm_Beng", "az": "azj_Latn",
    "ba": "bak_Cyrl", "be": "bel_Cyrl", "bg": "bul_Cyrl", "bn": "ben_Beng", "bo": "bod_Tibt",
    "bs": "bos_Latn", "ca": "cat_Latn", "cs": "ces_Latn", "cy": "cym_Latn", "da": "dan_Latn",
    "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn", "es": "spa_Latn", "et": "est_Latn",
    "eu": "eus_Latn", "fa": "pes_Arab", "fi": "fin_Latn", "fo": "fao_Latn", "fr": "fra_Latn",
    "gl": "glg_Latn", "gu": "guj_Gujr", "ha": "hau_Latn", "he": "heb_Hebr", "hi": "hin_Deva",
    "hr": "hrv_Latn", "ht": "hat_Latn", "hu": "hun_Latn", "hy": "hye_Armn", "id": "ind_Latn",
    "is": "isl_Latn", "it": "ita_Latn", "ja": "jpn_Jpan", "jw": "jav_Latn", "ka": "kat_Geor",
    "kk": "kaz_Cyrl", "km": "khm_Khmr", "kn": "kan_Knda", "ko": "kor_Hang", "lb": "ltz_Latn",
    "ln": "lin_Latn", "lo": "lao_Laoo", "lt": "lit_Latn", "lv": "lvs_Latn", "mg": "plt_Latn",
    "mi": "mri_Latn", "mk": "mkd_Cyrl", "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva",
    "ms": "zsm_Latn", "mt": "mlt_Latn", "my": "mya_Mymr", "ne": "npi_Deva", "nl": "nld_Latn",
    "nn": "nno_Latn", "no": "nob_Latn", "oc": "oci_Latn", "pa": "pan_Guru", "pl": "pol_Latn",
    "ps": "pbt_Arab", "pt": "por_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "sa": "san_Deva",
    "sd": "snd_Arab", "si": "sin_Sinh", "sk": "slk_Latn", "sl": "slv_Latn", "sn": "sna_Latn",
    "so": "som_Latn", "sq": "als_Latn", "sr": "srp_Cyrl", "su": "sun_Latn", "sv": "swe_Latn",
    "sw": "swh_Latn", "ta": "tam_Taml", "te": "tel_Telu", "tg": "tgk_Cyrl", "th": "tha_Thai",
    "tk": "tuk_Latn", "tl": "tgl_Latn", "tr": "tur_Latn", "tt": "tat_Cyrl", "uk": "ukr_Cyrl",
    "ur": "urd_Arab", "uz": "uzn_Latn", "vi": "vie_Latn", "yi": "ydd_Hebr", "yo": "yor_Latn",
    "yue": "yue_Hant", "zh": "zho_Hans",
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

NLLB_NAME = "nllb-200-distilled-600M"
"""The catalog name suggested when a multilingual model would make a route."""

WHISPER_ROUTE = "whisper-translate"
PIVOT = "en"

NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "yue"})
"""Targets whose sentences are joined with no space."""


def opus_mt_name(source: str, target: str) -> str:
    """The catalog name of the OPUS-MT model for a pair (``opus-mt-de-en``)."""
    return f"opus-mt-{source}-{target}"


# --- sentence splitting -------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    """mr mrs ms mx dr prof st jr sr vs mt lt col gen sgt capt gov sen rep rev hon e.g i.e cf approx
    z.b d.h u.a o.ä bzw ggf evtl hr hrn frl sra srta dra dña ud uds mme mlle p.ex sig dott dhr mevr
    a.m p.m""".split()
)
"""Words that end with a period but not a sentence (lower case, final period removed)."""

_BEFORE_NUMBER = frozenset(
    "no nr art vol p pp fig ch sec tel jan feb mar apr jun jul aug sep sept oct nov dec ca".split()
)
"""Abbreviations that are not a sentence end when a number follows (``No. 5``, ``Jan. 2020``)."""

_ORDINAL_DOT = frozenset("de da no nb nn fi cs sk sl hr sr bs hu lv et tr is fo".split())
"""Languages that write ordinals as ``3.`` (``am 3. Mai``): a number then a period is not an end."""

_OPENERS = "\"'“‘„«‹([{¿¡"
_CLOSERS = "\"'”’»›)]}」』）"
_BOUNDARY = re.compile(
    rf"(?P<latin>[.!?…]+[{re.escape(_CLOSERS)}]*)(?=\s)"
    rf"|(?P<cjk>[。！？｡]+[{re.escape(_CLOSERS)}]*)"
)


def split_sentences(text: str, language: str = "") -> list[str]:
    """Split ``text`` into sentences for translation, one batch item each.

    Breaks after ``. ! ? …`` followed by white space and after CJK ``。！？`` (no space needed);
    keeps abbreviations (``Mr.``, ``Dr.``, ``e.g.``), initials (``J. K.``), decimals (``3.5``),
    ordinals in languages that write ``3.`` and anything followed by a lower-case word together.
    Text after the last terminator is a sentence too.
    """
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        if m.group("latin") is not None and not _is_sentence_end(text, m, language):
            continue
        piece = text[start : m.end()].strip()
        if piece:
            sentences.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _is_sentence_end(text: str, m: re.Match[str], language: str) -> bool:
    nxt = text[m.end() :].lstrip().lstrip(_OPENERS)[:1]
    if nxt.islower():
        return False  # "approx. five", "... and then"
    punct = m.group("latin").rstrip(_CLOSERS)
    if set(punct) != {"."} or len(punct) != 1:
        return True  # "!", "?", "?!", "...", "…"
    before = text[: m.start()].rsplit(" ", 1)[-1].lstrip(_OPENERS)
    word = before.lower()
    if not word:
        return True
    if word in _ABBREVIATIONS:
        return False
    if re.fullmatch(r"[A-Z]", before) or re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", before):
        return False  # an initial ("J. K. Rowling") or an acronym ("U.S.")
    if nxt.isdigit() and word in _BEFORE_NUMBER:
        return False
    if word.isdigit() and language in _ORDINAL_DOT:
        return False
    return True


def join_sentences(sentences: Iterable[str], language: str) -> str:
    """Rejoin translated sentences: no space for Chinese and Japanese, one space otherwise."""
    sep = "" if language in NO_SPACE_LANGUAGES else " "
    return sep.join(s for s in (x.strip() for x in sentences) if s)


# --- one CTranslate2 model ----------------------------------------------------------------------

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


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


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
        import sentencepiece  # noqa: PLC0415

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

        def load_spm(path: Path):  # noqa: ANN202
            try:
                return sentencepiece.SentencePieceProcessor(model_file=str(path))
            except (OSError, RuntimeError) as e:
                raise ModelError(f"{path}: cannot read the sentencepiece model ({_first_line(e)}); reinstall {model.name}") from e

        self._source_sp = load_spm(source_spm)
        self._target_sp = self._source_sp if target_spm == source_spm else load_spm(target_spm)
        try:
            self._translator = ctranslate2.Translator(
                str(ct2_dir),
                device="cpu",
                compute_type=compute_type,
                inter_threads=1,
                intra_threads=cpu_threads,
            )
        except (RuntimeError, ValueError, OSError) as e:
            raise ModelError(
                f"{ct2_dir}: cannot load the translation model ({_first_line(e)}); the files are corrupt or incomplete, reinstall {model.name}"
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
                for sentence, toks in zip(texts, pieces):
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


# --- routes -------------------------------------------------------------------------------------

ROUTE_KINDS = ("same", "whisper", "direct", "pivot")


@dataclass(frozen=True)
class Route:
    """How one language pair is translated.

    ``kind``: ``same`` (nothing to do), ``direct`` (one model), ``pivot`` (source->en, en->target)
    or ``whisper`` (the recognizer runs Whisper's translate task so its text is already English;
    ``models`` then holds the en->target model when the target is not English, else nothing).
    ``name`` goes into :attr:`Translation.route`; ``note`` is one line for the UI.
    """

    kind: str
    name: str
    models: tuple[MtModel, ...] = ()
    note: str = ""
    source: str = ""
    target: str = ""

    @property
    def recognizer_task(self) -> str:
        """The Whisper task the recognizer must run for this route."""
        return "translate" if self.kind == "whisper" else "transcribe"


_FAMILY_ORDER = {"marian": 0, "m2m100": 1, "nllb": 2}
"""Preference among models serving a pair: Marian is ~10x faster than NLLB-600M per token."""


def best_model(source: str, target: str, models: Iterable[MtModel]) -> MtModel | None:
    """The fastest installed model serving the pair (Marian first, then M2M100, then NLLB)."""
    serving = [m for m in models if m.serves(source, target)]
    serving.sort(key=lambda m: _FAMILY_ORDER.get(m.family, 9))
    return serving[0] if serving else None


def _whisper_to_english(source: str, reason: str) -> Route:
    note = f"translating {source}->en with Whisper's translate task ({reason})"
    return Route("whisper", WHISPER_ROUTE, (), note, source, PIVOT)


def _whisper_then(source: str, target: str, models: Sequence[MtModel], *, reason: str) -> Route | None:
    """Whisper's English, then (if the target is not English) one en->target model."""
    if target == PIVOT:
        return _whisper_to_english(source, reason)
    second = best_model(PIVOT, target, models)
    if second is None:
        return None
    note = f"translating {source}->{target} through Whisper's English translation and {second.name} ({reason})"
    return Route("whisper", f"{WHISPER_ROUTE}+{second.name}", (second,), note, source, target)


def plan_route(
    source: str,
    target: str,
    models: Sequence[MtModel],
    *,
    whisper_translate_available: bool,
    prefer_whisper: bool = False,
) -> Route:
    """Choose how to translate ``source`` into ``target`` with what is installed.

    In order: same language -> ``same``; with ``prefer_whisper`` and a multilingual recognizer,
    X->en -> ``whisper``; a model serving the pair (Marian preferred) -> ``direct``; X->en with a
    multilingual recognizer -> ``whisper``; source->en and en->target models -> ``pivot``; a
    multilingual recognizer and an en->target model -> ``whisper`` followed by that model.
    Raises LanguageError for an unknown code or when nothing makes a route, naming what to install.
    """
    check_language(source)
    check_language(target)
    if source == target:
        return Route("same", "same", (), "", source, target)
    if whisper_translate_available and prefer_whisper and target == PIVOT:
        return _whisper_to_english(source, "preferred in the config")
    direct = best_model(source, target, models)
    if direct is not None:
        note = f"translating {source}->{target} with {direct.name}"
        return Route("direct", direct.name, (direct,), note, source, target)
    if whisper_translate_available and target == PIVOT:
        return _whisper_to_english(source, f"no {opus_mt_name(source, target)} installed")
    whisper_mt = None
    if whisper_translate_available and source != PIVOT:
        whisper_mt = _whisper_then(source, target, models, reason=f"no {opus_mt_name(source, target)} installed")
        if whisper_mt is not None and prefer_whisper:
            return whisper_mt
    if PIVOT not in (source, target):
        first, second = best_model(source, PIVOT, models), best_model(PIVOT, target, models)
        if first is not None and second is not None:
            note = f"translating {source}->{target} through English (two models: {first.name}, {second.name})"
            return Route("pivot", f"pivot:{first.name}+{second.name}", (first, second), note, source, target)
    if whisper_mt is not None:
        return whisper_mt
    raise LanguageError(_no_route_message(source, target, models, whisper_translate_available))


def _no_route_message(source: str, target: str, models: Sequence[MtModel], whisper: bool) -> str:
    options = [opus_mt_name(source, target)]
    if PIVOT not in (source, target):
        first, second = best_model(source, PIVOT, models), best_model(PIVOT, target, models)
        if first is not None:
            options.append(f"{opus_mt_name(PIVOT, target)} (to pivot through the installed {first.name})")
        elif second is not None:
            options.append(f"{opus_mt_name(source, PIVOT)} (to pivot through the installed {second.name})")
        else:
            options.append(f"{opus_mt_name(source, PIVOT)} + {opus_mt_name(PIVOT, target)}")
    if source in NLLB_CODES and target in NLLB_CODES:
        options.append(NLLB_NAME)
    message = f"no translation route from {source} to {target}: install " + ", or ".join(options)
    if target == PIVOT and not whisper:
        message += ", or use a multilingual Whisper model (not *.en) for its translate task"
    return message


# --- executing routes ---------------------------------------------------------------------------


class TextTranslator:
    """Translates text along routes; loads each model once (on first use or :meth:`prepare`) and
    shares it between routes (``opus-mt-de-en`` serves both ``de->en`` and the first leg of
    ``de->es``)."""

    def __init__(
        self,
        models: Sequence[MtModel] = (),
        *,
        cpu_threads: int = 0,
        compute_type: str = "int8",
        whisper_translate_available: bool = False,
        prefer_whisper: bool = False,
        loader: Callable[[MtModel], CT2Translator] | None = None,
    ) -> None:
        self.models = list(models)
        self.cpu_threads = cpu_threads
        self.compute_type = compute_type
        self.whisper_translate_available = whisper_translate_available
        self.prefer_whisper = prefer_whisper
        self._loader = loader or (lambda m: CT2Translator(m, cpu_threads=self.cpu_threads, compute_type=self.compute_type))
        self._loaded: dict[Path, CT2Translator] = {}
        self._lock = threading.Lock()

    def translator(self, model: MtModel) -> CT2Translator:
        """The loaded model (loaded now if it is the first use)."""
        key = Path(model.path).resolve()
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                loaded = self._loaded[key] = self._loader(model)
            return loaded

    @property
    def loaded(self) -> list[CT2Translator]:
        with self._lock:
            return list(self._loaded.values())

    def plan(self, source: str, target: str) -> Route:
        return plan_route(
            source,
            target,
            self.models,
            whisper_translate_available=self.whisper_translate_available,
            prefer_whisper=self.prefer_whisper,
        )

    def prepare(self, route: Route, *, warm_up: bool = True) -> None:
        """Load (and warm up) the models a route needs, so its first use is fast."""
        for model in route.models:
            t = self.translator(model)
            if warm_up:
                t.warm_up()

    def warm_up(self) -> None:
        """Warm up every loaded model."""
        for t in self.loaded:
            t.warm_up()

    def translate(self, text: str, source: str, target: str, *, route: Route | None = None) -> tuple[str, Route]:
        """``text`` in ``target`` and the route taken.

        ``same`` returns the text unchanged; ``whisper`` means the text is already Whisper's English
        (translated further by the route's en->target model when the target is not English).
        """
        route = route or self.plan(source, target)
        if route.kind == "same" or not text.strip():
            return text.strip(), route
        if route.kind == "whisper":
            if not route.models:
                return text.strip(), route
            source = PIVOT
        sentences = split_sentences(text, source)
        language = source
        for i, model in enumerate(route.models):
            nxt = target if i == len(route.models) - 1 else PIVOT
            sentences = self.translator(model).translate_sentences(sentences, language, nxt)
            language = nxt
        return join_sentences(sentences, target), route


# --- the pipeline stage -------------------------------------------------------------------------


@dataclass
class _Plans:
    routes: dict[tuple[str, str, bool], Route] = field(default_factory=dict)
    told: set[tuple[str, str, str]] = field(default_factory=set)


class TranslatorStage:
    """Pipeline stage: ``feed(Transcript) -> Iterator[Translation | Notice]``.

    ``target`` is the language to translate into; in conversation mode (``pair=("en", "es")``)
    the target is the other language of the pair than the one detected. Routes are planned with
    :func:`plan_route` once per language pair and remembered; :meth:`recognizer_task` asks the
    same plan, so the recognizer runs Whisper's translate task exactly when the route needs it.
    A Notice is emitted the first time a pivot or whisper route is used for a pair. A failure
    (no route, a broken model) raises a TranslatorError for the pipeline to report.
    """

    def __init__(
        self,
        text_translator: TextTranslator,
        target: str,
        *,
        models: Sequence[MtModel] = (),
        whisper_translate_available: bool = False,
        prefer_whisper: bool = False,
        pair: tuple[str, str] | None = None,
    ) -> None:
        if pair is not None and (len(pair) != 2 or pair[0] == pair[1]):
            raise LanguageError(f"a conversation pair needs two different languages, got {pair!r}")
        for code in pair or (target,):
            check_language(code)
        self.text_translator = text_translator
        self.target = target
        self.pair = tuple(pair) if pair else None
        self.models = list(models)
        self.whisper_translate_available = whisper_translate_available
        self.prefer_whisper = prefer_whisper
        self._plans = _Plans()
        self._lock = threading.Lock()

    def target_for(self, source: str) -> str:
        """The language ``source`` speech is translated into."""
        if self.pair is None:
            return self.target
        return self.pair[1] if source == self.pair[0] else self.pair[0]

    def route_for(self, source: str, target: str | None = None, *, whisper: bool | None = None) -> Route:
        """The planned route for ``source`` (to its target); raises LanguageError when there is none."""
        target = target or self.target_for(source)
        whisper = self.whisper_translate_available if whisper is None else whisper
        key = (source, target, whisper)
        with self._lock:
            route = self._plans.routes.get(key)
        if route is None:
            route = plan_route(source, target, self.models, whisper_translate_available=whisper,
                               prefer_whisper=self.prefer_whisper)
            with self._lock:
                self._plans.routes[key] = route
        return route

    def recognizer_task(self, source_language: str | None) -> str:
        """``translate`` when the route for ``source_language`` is Whisper's translate task, else
        ``transcribe`` (also when the language is not known yet or no route exists)."""
        if not source_language:
            return "transcribe"
        try:
            return self.route_for(source_language).recognizer_task
        except LanguageError:
            return "transcribe"

    def prepare(self, sources: Iterable[str], *, warm_up: bool = True) -> list[Route]:
        """Plan the routes for these source languages and load (warm up) their models now."""
        routes = [self.route_for(s) for s in sources]
        for route in routes:
            self.text_translator.prepare(route, warm_up=warm_up)
        return routes

    def _effective_route(self, t: Transcript, source: str, target: str) -> Route:
        planned = self.route_for(source, target)
        if t.task == "translate":
            if planned.kind == "whisper":
                return planned
            # The recognizer translated anyway: its text is English; go on from there.
            after = _whisper_then(source, target, self.models, reason="the recognizer translated to English")
            if after is None:
                raise LanguageError(_no_route_message(PIVOT, target, self.models, True))
            return after
        if planned.kind == "whisper":
            # The recognizer did not translate: the text is in the source language after all.
            return self.route_for(source, target, whisper=False)
        return planned

    def feed(self, t: Transcript) -> Iterator[Translation | Notice]:
        text = t.text.strip()
        if not text:
            return
        source = t.language
        target = self.target_for(source)
        route = self._effective_route(t, source, target)
        if route.kind in ("pivot", "whisper"):
            key = (source, target, route.name)
            with self._lock:
                first = key not in self._plans.told
                self._plans.told.add(key)
            if first:
                yield Notice(route.note, time.monotonic())
        t0 = time.perf_counter()
        translated, route = self.text_translator.translate(text, source, target, route=route)
        compute = time.perf_counter() - t0
        yield Translation(
            utterance_id=t.utterance_id,
            source_text=t.original or t.text,
            source_language=source,
            text=translated,
            target_language=target,
            route=route.name,
            start=t.start,
            t_end=t.t_end,
            t_end_wall=t.t_end_wall,
            wall=time.monotonic(),
            compute_seconds=compute,
        )


__all__ = [
    "NLLB_CODES",
    "M2M100_CODES",
    "NLLB_NAME",
    "WHISPER_ROUTE",
    "CACHE_SIZE",
    "CT2Translator",
    "Route",
    "TextTranslator",
    "TranslatorStage",
    "best_model",
    "decode_limit",
    "join_sentences",
    "opus_mt_name",
    "plan_route",
    "split_sentences",
]
