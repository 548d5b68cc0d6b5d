"""Text helpers shared by the grounding check and the extractive link: sentences,
content words, citations. Deterministic, no models."""

from __future__ import annotations

import functools
import re
import unicodedata


def _split(text: str) -> list[str]:
    return text.split()


# fmt: off
STOPWORDS = frozenset(_split("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can cannot could did do does doing done down during each
either else etc even ever every few for from further get gets got had has have having he her
here hers him his how however i if in into is it its itself just let lets like may me might
more most much must my need needs no nor not now of off on once one only or other our ours
out over own per please rather really same say says see she should simply so some still such
sure than that the their theirs them then there these they this those through thus to too
under until up upon us use used uses using very via was we were what when where whether which
while who whom whose why will with within without would yet you your yours yourself
e.g i.e eg ie ok okay go goes going make makes made first next finally step steps here's
there's it's you'll you're you've we'll we're i'm i'll don't doesn't can't won't isn't aren't
"""))
# fmt: on

#: Words of courtesy and framing: a sentence made only of these claims nothing.
COURTESY = frozenset(
    _split(
        "hope help helps helpful glad happy sorry thank thanks let know question questions"
        " anything else assist assistance further reach hesitate welcome great day hi hello"
        " certainly absolutely below follow following steps answer info information"
        " good luck best regards"
    )
)

NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        _split(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen"
            " fourteen fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+(?:['_.][a-z0-9]+)*")
_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")

#: ``[id]`` or ``[id1, id2]``; a Markdown link ``[text](url)`` is not a citation.
CITATION = re.compile(r"\[([^\[\]\n]{1,300})\](?!\()")
_ID = re.compile(r"^[A-Za-z0-9][\w.@#:/-]*$")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+")
_ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|etc|vs|approx|incl|no|Mr|Ms|Dr)\.\s", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PROTECT = "\x00"
_LEADING_CITATIONS = re.compile(r"^(?:\s*\[[^\[\]\n]{1,300}\](?!\())+[.,;]?")


def normalize(text: str) -> str:
    """NFKC, no zero-width characters, whitespace collapsed (case kept)."""
    text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    return re.sub(r"[ \t\r\f\v]+", " ", text)


def numbers_as_digits(text: str) -> str:
    """``five minutes`` -> ``5 minutes`` so spelled and digit forms compare equal."""
    return _NUMBER_WORD.sub(lambda m: NUMBER_WORDS[m.group(1).lower()], text)


@functools.lru_cache(maxsize=16384)
def stem(word: str) -> str:
    """A crude suffix stripper: the same word on both sides of a comparison must agree,
    nothing more (``expires``, ``expired``, ``expire`` -> ``expir``)."""
    if word.isdigit() or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "zes", "ches", "shes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def words(text: str) -> list[str]:
    return _WORD.findall(numbers_as_digits(normalize(text)).lower())


def content_words(text: str, extra_stop: frozenset[str] = frozenset()) -> list[str]:
    """Stemmed words that carry meaning (no stopwords, single letters dropped)."""
    return list(_content_words(text, extra_stop))


@functools.lru_cache(maxsize=2048)
def _content_words(text: str, extra_stop: frozenset[str]) -> tuple[str, ...]:
    # pure and called on the same passages by retrieval, the extractive link and the
    # grounding check of every answer: cached (passages repeat across questions)
    out = []
    for w in words(text):
        if w in STOPWORDS or w in extra_stop or (len(w) < 2 and not w.isdigit()):
            continue
        out.append(stem(w))
    return tuple(out)


def citation_ids(text: str) -> list[str]:
    """Ids cited in ``text``, in order of first appearance: ``[a#1]``, ``[a#1, b#2]``."""
    found: list[str] = []
    for match in CITATION.finditer(text):
        for part in re.split(r"[,;]|\s+", match.group(1)):
            part = part.strip().strip("`'\"")
            if part and _ID.match(part) and _looks_like_id(part) and part not in found:
                found.append(part)
    return found


def _looks_like_id(token: str) -> bool:
    return any(c in token for c in "-#@_:/") or any(c.isdigit() for c in token)


def strip_citations(text: str) -> str:
    return CITATION.sub(lambda m: "" if citation_ids(m.group(0)) else m.group(0), text)


def strip_list_marker(text: str) -> str:
    return _LIST_MARKER.sub("", text, count=1)


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer: every line is at least one sentence (list items, steps),
    long lines split at ``. ``; a citation after the full stop stays with its sentence.
    Fenced code blocks (see :func:`code_blocks`) and Markdown rules are left out."""
    out: list[str] = []
    in_fence = False
    for raw in normalize(text).split("\n"):
        line = raw.strip()
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if not line or re.fullmatch(r"[|:\- ]+", line):
            continue
        if in_fence:
            continue
        line = strip_list_marker(line)
        protected = _ABBREVIATIONS.sub(lambda m: m.group(0).replace(". ", "." + _PROTECT), line)
        for piece in _SENTENCE_END.split(protected):
            piece = piece.replace(_PROTECT, " ").strip()
            lead = _LEADING_CITATIONS.match(piece)
            if lead and out and citation_ids(lead.group(0)):
                out[-1] = f"{out[-1]} {lead.group(0).strip()}"
                piece = piece[lead.end() :].strip()
            if piece:
                out.append(piece)
    return out


def code_blocks(text: str) -> list[str]:
    """The lines inside the fenced code blocks of ``text``."""
    lines: list[str] = []
    in_fence = False
    for raw in normalize(text).split("\n"):
        if raw.strip().startswith("```"):
            in_fence = not in_fence
        elif in_fence and raw.strip():
            lines.append(raw.strip())
    return lines
