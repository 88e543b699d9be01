# ruff: noqa: RUF001, RUF003 (look-alike characters are what these tests are about)
import pytest

from apps.moderation.engine import Rules, username_normalize, username_skeleton


@pytest.mark.parametrize(
    "raw",
    ["Alice", "bob_99", "j.doe", "x-ray7", "Zoë", "José.Núñez", "e\u0301clair", "ÆsirFan"],
)
def test_ordinary_latin_names_pass_and_keep_their_case_and_accents(raw: str) -> None:
    decision = username_normalize(raw, Rules())

    assert decision.ok
    assert decision.code == "ok"
    assert decision.display_name is not None
    assert decision.display_name.casefold() == raw.casefold() or raw.startswith("e\u0301")


@pytest.mark.parametrize(
    "raw",
    [
        "Алексей",  # Cyrillic
        "Мария_77",
        "Ελένη",  # Greek
        "محمد",  # Arabic
        "דוד",  # Hebrew
        "王小明",  # Han
        "たなか",  # Hiragana
        "김민수",  # Hangul
        "निशा",  # Devanagari, with vowel signs (marks)
        "สมชาย",  # Thai
    ],
)
def test_single_script_names_in_other_scripts_pass(raw: str) -> None:
    decision = username_normalize(raw, Rules())

    assert decision.ok, decision


@pytest.mark.parametrize("raw", ["たなか太郎", "Tanaka太郎", "Kimチーム", "김민수Kim", "王小明Lee"])
def test_tr39_highly_restrictive_combinations_pass(raw: str) -> None:
    assert username_normalize(raw, Rules()).ok


@pytest.mark.parametrize(
    "raw",
    [
        "pаypal",  # Cyrillic а inside Latin
        "Аlice",  # Cyrillic capital А
        "αlice",  # Greek alpha
        "bobΟ",  # Greek capital omicron
        "Алексей_bob",
        "김민수Алексей",
    ],
)
def test_mixed_scripts_are_rejected(raw: str) -> None:
    decision = username_normalize(raw, Rules())

    assert not decision.ok
    assert decision.code == "mixed_scripts"


def test_nfkc_folds_fullwidth_and_mathematical_letters() -> None:
    fullwidth = username_normalize("ｈｅｌｌｏ", Rules())
    bold = username_normalize("𝐡𝐞𝐥𝐥𝐨", Rules())

    assert fullwidth.display_name == "hello"
    assert bold.display_name == "hello"


def test_raw_length_is_capped_before_normalising() -> None:
    decision = username_normalize("a" * (24 * 4 + 1), Rules())

    assert decision.code == "too_long"
    assert decision.display_name is None  # refused before NFKC ran


@pytest.mark.parametrize(("raw", "code"), [("ab", "too_short"), ("a" * 25, "too_long"), ("abc", "ok")])
def test_length_is_checked_after_normalising(raw: str, code: str) -> None:
    assert username_normalize(raw, Rules()).code == code


def test_length_limits_come_from_rules() -> None:
    rules = Rules(min_length=5, max_length=8)

    assert username_normalize("abcd", rules).code == "too_short"
    assert username_normalize("abcdefghi", rules).code == "too_long"
    assert username_normalize("abcdefgh", rules).ok


def test_a_ligature_that_expands_is_measured_after_nfkc() -> None:
    decision = username_normalize("ﬀ" * 13, Rules())  # 13 characters raw, 26 after NFKC

    assert decision.code == "too_long"


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_empty_names_are_rejected(raw: str) -> None:
    assert username_normalize(raw, Rules()).code == "empty"


def test_surrounding_whitespace_is_dropped() -> None:
    assert username_normalize("  alice ", Rules()).display_name == "alice"


@pytest.mark.parametrize(
    "raw",
    [
        "ha\u200bte",  # zero-width space
        "ha\u200cte",  # zero-width non-joiner
        "ha\u200dte",  # zero-width joiner
        "ha\u2060te",  # word joiner
        "ha\ufeffte",  # byte order mark
        "ha\u00adte",  # soft hyphen
        "abc\u202e",  # right-to-left override
        "\u2066abc\u2069",  # bidi isolates
        "abc\u061c",  # Arabic letter mark
        "ab\u3164c",  # Hangul filler
        "abc\ufe0f",  # variation selector
        "ab\x00c",
        "ab\x7fc",
    ],
)
def test_invisible_and_bidi_characters_are_rejected_not_stripped(raw: str) -> None:
    decision = username_normalize(raw, Rules())

    assert not decision.ok
    assert decision.code == "invisible_characters"


@pytest.mark.parametrize(
    "raw",
    [
        "h@te",
        "$wag",
        "two words",
        "smile😀",
        "abc٣",  # Arabic-Indic digit: only ASCII digits are allowed
        "a+b=c",
        "ʼbob",  # modifier letter that passes for an apostrophe
        "\u0301abc",  # combining mark with no letter before it
        "z\u0301\u0302\u0303\u0304\u0305",  # "zalgo" stack of marks
    ],
)
def test_characters_outside_the_allowed_set_are_rejected(raw: str) -> None:
    decision = username_normalize(raw, Rules())

    assert decision.code == "invalid_characters"
    assert "_ - ." in decision.reason


def test_a_name_needs_a_letter() -> None:
    decision = username_normalize("12345", Rules())

    assert decision.code == "invalid_characters"
    assert "letter" in decision.reason


@pytest.mark.parametrize("raw", ["_bob", "bob.", "-bob-"])
def test_names_cannot_start_or_end_with_a_separator(raw: str) -> None:
    assert username_normalize(raw, Rules()).code == "invalid_characters"


@pytest.mark.parametrize("raw", ["bob__x", "bob._x", "bob-.x"])
def test_doubled_separators_are_rejected(raw: str) -> None:
    assert username_normalize(raw, Rules()).code == "too_many_special_characters"


def test_share_of_special_characters_is_limited_by_rules() -> None:
    assert username_normalize("a_b_c", Rules()).code == "too_many_special_characters"
    assert username_normalize("a_b_c", Rules(max_special_ratio=0.5)).ok
    assert username_normalize("ab_cd", Rules()).ok


def test_ok_decision_carries_the_skeleton_of_the_display_name() -> None:
    decision = username_normalize("ＡＬＩＣＥ", Rules())

    assert decision.display_name == "ALICE"
    assert decision.skeleton == username_skeleton("ALICE")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Iimes", "limes"),  # capital I vs small l
        ("pаypal", "paypal"),  # Cyrillic а
        ("KILL", "kill"),  # case, although TR39 maps I to l
        ("Alice", "alice"),
        ("Zoë", "zoe"),
        ("ΗΑΤΕ", "hate"),  # Greek capitals
        ("ᴀdmin", "admin"),  # Latin small capital, not in confusables.txt
        ("rnary", "mary"),
        ("b0b", "bob"),
        ("ｂｏｂ", "bob"),
    ],
)
def test_look_alike_names_share_a_skeleton(first: str, second: str) -> None:
    assert username_skeleton(first) == username_skeleton(second)


@pytest.mark.parametrize(("first", "second"), [("bob", "rob"), ("anna", "ana"), ("john_smith", "johnsmith")])
def test_different_names_keep_different_skeletons(first: str, second: str) -> None:
    assert username_skeleton(first) != username_skeleton(second)


def test_skeleton_is_stable_for_non_latin_names() -> None:
    assert username_skeleton("김민수") == username_skeleton("김민수")
    assert username_skeleton("王小明") == "王小明"
