"""Username validation throughput: the pure engine, one core, a 20,000-term fake blocklist.

Usage (no database, no Django):

    .venv/bin/python bench/username_validation.py [--terms 20000] [--names 20000] [--rounds 3]

Terms, allowed words and names are generated from a fixed seed (made-up letter strings, never a
real list). Names look like handles (syllables, camelCase, digits, separators); some carry leet,
look-alike letters or an embedded term, some are in other scripts. Prints a Markdown section for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import string
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.moderation.engine import (
    Category,
    Matcher,
    MatchMode,
    Severity,
    Term,
    matcher_build,
    username_evaluate,
    username_normalize,
)

SYLLABLES = ["ka", "ro", "mi", "zen", "tor", "la", "vex", "qu", "shi", "dan", "ne", "ko", "star", "wolf"]
SYLLABLES += ["dark", "night", "pro", "gamer", "lu", "fi", "ra", "bel", "son", "ty", "max", "ix", "el"]
OTHER_SCRIPTS = [
    "Алексей",
    "Мария_77",
    "Ελένη",
    "Γιώργος",
    "王小明",
    "たなか太郎",
    "김민수",
    "محمد",
    "José.Núñez",
]
IMPERSONATION = ["admin", "administrator", "mod", "moderator", "official", "support", "staff", "haunt"]
LEET = str.maketrans({"a": "4", "e": "3", "o": "0", "s": "5", "t": "7", "i": "1"})
LOOKALIKE = str.maketrans(
    {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441"}
)  # Cyrillic


def fake_terms(rng: random.Random, count: int) -> list[Term]:
    terms = []
    modes = [MatchMode.SUBSTRING] * 7 + [MatchMode.TOKEN] * 2 + [MatchMode.EXACT]
    categories = [c for c in Category if c is not Category.IMPERSONATION]
    for term_id in range(1, count + 1):
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 12)))
        severity = Severity.WARNING if rng.random() < 0.2 else Severity.REJECT
        terms.append(Term(term_id, word, rng.choice(categories), severity, rng.choice(modes)))
    for offset, word in enumerate(IMPERSONATION, start=count + 1):
        mode = MatchMode.SUBSTRING if len(word) > 7 else MatchMode.TOKEN
        terms.append(Term(offset, word, Category.IMPERSONATION, Severity.REJECT, mode))
    return terms


def handle(rng: random.Random) -> str:
    parts = [rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))]
    style = rng.random()
    if style < 0.25:
        name = "".join(p.capitalize() for p in parts)
    elif style < 0.4:
        name = "_".join(["".join(parts[:-1]), parts[-1]])
    else:
        name = "".join(parts)
    if rng.random() < 0.35:
        name += str(rng.randint(1, 9999))
    return name


def fake_names(rng: random.Random, count: int, terms: list[Term]) -> list[str]:
    names = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05:
            name = rng.choice(OTHER_SCRIPTS)
        elif roll < 0.10:
            name = handle(rng) + rng.choice(terms).term  # an embedded term
        elif roll < 0.15:
            name = handle(rng).translate(LEET)
        elif roll < 0.18:
            name = handle(rng).lower().translate(LOOKALIKE)
        else:
            name = handle(rng)
        names.append(name[:24])
    return names


def adversarial_names(rng: random.Random, count: int) -> list[str]:
    """24 characters of leet symbols, repeats, spaces and camelCase, as a `check` request may send."""
    alphabet = "aeiou01345678$@!| " + string.ascii_letters
    return ["".join(rng.choice(alphabet) * rng.randint(1, 3) for _ in range(12))[:24] for _ in range(count)]


def rate(fn: Callable[[str], object], names: list[str], rounds: int) -> float:
    """Names per second, best of `rounds` passes (the machine is shared and noisy)."""
    best = min(timed(fn, names) for _ in range(rounds))
    return len(names) / best


def timed(fn: Callable[[str], object], names: list[str]) -> float:
    start = time.perf_counter()
    for name in names:
        fn(name)
    return time.perf_counter() - start


def build_times(terms: list[Term], allowed: list[str], rounds: int) -> tuple[list[float], Matcher]:
    times, matcher = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        matcher = matcher_build(terms, allowed)
        times.append(time.perf_counter() - start)
    assert matcher is not None
    return times, matcher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--terms", type=int, default=20_000)
    parser.add_argument("--names", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    terms = fake_terms(rng, args.terms)
    allowed = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(6, 14))) for _ in range(1_000)]
    names = fake_names(rng, args.names, terms)
    hostile = adversarial_names(rng, args.names // 4)

    username_normalize("warmup")  # loads the confusables data outside the timings
    times, matcher = build_times(terms, allowed, args.rounds)
    displays = [d.display_name for d in map(username_normalize, names) if d.ok and d.display_name]

    def evaluate(name: str) -> object:
        return username_evaluate(name, matcher=matcher)

    outcomes = Counter(
        "accepted" if d.ok and d.severity is None else "flagged" if d.ok else d.code
        for d in map(evaluate, names)
    )
    full = rate(evaluate, names, args.rounds)
    rows = [
        ("username_evaluate (normalise + match), handles", len(names), full),
        (
            "username_normalize only (format passes + skeleton)",
            len(names),
            rate(username_normalize, names, args.rounds),
        ),
        (
            "Matcher.find only, on valid display names",
            len(displays),
            rate(matcher.find, displays, args.rounds),
        ),
        (
            "Matcher.find only, adversarial 24-char strings",
            len(hostile),
            rate(matcher.find, hostile, args.rounds),
        ),
    ]
    print_report(args, times, len(matcher), outcomes, rows, full)


def print_report(
    args: argparse.Namespace,
    times: list[float],
    keys: int,
    outcomes: Counter[str],
    rows: list[tuple[str, int, float]],
    full: float,
) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print("## Username validation\n")
    print(
        f"Command: `python bench/username_validation.py --terms {args.terms} --names {args.names} "
        f"--rounds {args.rounds}`\n"
    )
    print(
        f"Machine: {os.cpu_count()} cores, shared and noisy; Python {platform.python_version()}, one process "
        f"(one core). Load average at start: {load}.\n"
    )
    print(
        f"{args.terms:,} fake terms (4 to 12 random letters; 70% substring, 20% token, 10% exact; 20% warnings) "
        f"plus 8 impersonation terms, 1,000 global allowed words. Names: generated handles (syllables, "
        f"camelCase, digits, `_`), 5% other scripts, 5% with an embedded term, 5% leet, 3% Cyrillic "
        f"look-alikes. Rates are the best of {args.rounds} passes.\n"
    )
    print(
        f"Matcher build: {statistics.median(times) * 1000:.0f} ms (median of {args.rounds}), "
        f"{keys:,} keys. Outcomes: {', '.join(f'{k} {v:,}' for k, v in outcomes.most_common())}.\n"
    )
    print("| what | names | names/s | µs/name |")
    print("|---|---|---|---|")
    for label, count, per_second in rows:
        print(f"| {label} | {count:,} | {per_second:,.0f} | {1e6 / per_second:.1f} |")
    verdict = "met" if full >= 20_000 else "NOT met"
    print(f"\nTarget ≥ 20,000 names/s on one core: **{verdict}** ({full:,.0f}/s).")


if __name__ == "__main__":
    main()
