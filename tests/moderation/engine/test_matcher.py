# ruff: noqa: RUF001 (look-alike characters are what these tests are about)
import time

import pytest

from apps.moderation.engine import Category, MatchMode, Severity, matcher_build
from apps.moderation.engine.matching import name_forms, term_keys
from tests.moderation.engine.factories import EVASIONS, fake_matcher, make_term


@pytest.mark.parametrize(
    "name", [name for names in EVASIONS.values() for name in names], ids=lambda name: ascii(name)
)
def test_every_evasion_class_is_caught(name: str) -> None:
    hit = fake_matcher().find(name)

    assert hit is not None
    assert hit.term_id in {1, 2}


@pytest.mark.parametrize("name", ["alice", "coolguy", "remodel", "modulus", "nightwolf", "assistant"])
def test_ordinary_names_have_no_hit(name: str) -> None:
    assert fake_matcher().find(name) is None


def test_substring_hit_inside_a_global_allowed_word_is_excused() -> None:
    assert fake_matcher().find("chateau") is None
    assert fake_matcher().find("chateau_fan") is None


def test_substring_hit_inside_a_per_term_allowed_word_is_excused() -> None:
    assert fake_matcher().find("whatever") is None
    assert fake_matcher().find("WhatEver99") is None


def test_per_term_allowed_word_excuses_only_its_own_term() -> None:
    hit = fake_matcher().find("grobular")  # excuses "grob", not "bula" inside it

    assert hit is not None
    assert hit.term_id == 8


def test_allowed_word_excuses_only_the_hit_it_covers() -> None:
    hit = fake_matcher().find("whateverhate")

    assert hit is not None
    assert hit.term_id == 2


def test_two_words_meeting_across_a_separator_are_not_a_hit() -> None:
    assert fake_matcher().find("that_eagle") is None  # "t_hate_agle" would read "hate"
    assert fake_matcher().find("ThatEagle") is None


def test_token_mode_matches_whole_tokens_only() -> None:
    matcher = fake_matcher()

    assert matcher.find("zorkish") is None
    assert matcher.find("zork_99") is not None
    assert matcher.find("ZorkMaster") is not None
    assert matcher.find("z0rk") is not None


def test_exact_mode_matches_the_whole_name_only() -> None:
    matcher = fake_matcher()

    assert matcher.find("blorp") is not None
    assert matcher.find("B.L.O.R.P") is not None
    assert matcher.find("blorpy") is None
    assert matcher.find("blorp_fan") is None


def test_substring_terms_shorter_than_four_letters_match_as_tokens() -> None:
    matcher = matcher_build([make_term(term="dle", match_mode=MatchMode.SUBSTRING)], [])

    assert matcher.find("middlesex") is None
    assert matcher.find("dle_99") is not None


def test_digits_only_tokens_are_not_decoded_as_leet() -> None:
    matcher = fake_matcher()

    assert matcher.find("player_2341") is None  # 2341 would decode to "zeal"
    assert matcher.find("z3al") is not None


def test_terms_are_transformed_like_names() -> None:
    matcher = matcher_build([make_term(term="Bad_W0rd")], [])

    assert term_keys("Bad_W0rd") == term_keys("badword")
    assert matcher.find("badword") is not None


def test_a_term_with_a_double_letter_is_not_matched_by_its_single_letter_spelling() -> None:
    matcher = fake_matcher()

    assert matcher.find("glop") is None
    assert matcher.find("glooooop") is not None
    assert matcher.find("gloop") is not None


def test_most_severe_hit_wins() -> None:
    hit = fake_matcher().find("grob_hate")

    assert hit is not None
    assert hit.severity is Severity.REJECT
    assert hit.term_id == 2


def test_warning_hit_is_returned_when_nothing_else_matches() -> None:
    hit = fake_matcher().find("grobfan")

    assert hit is not None
    assert hit.severity is Severity.WARNING


@pytest.mark.parametrize(
    "name",
    [
        "admin",
        "ADMIN",
        "Admin_Team",
        "4dm1n",
        "adm1n",
        "adrnin",  # rn for m
        "a.d.m.i.n",
        "ᴀdmin",
        "ａｄｍｉｎ",
        "m0d",
        "the_mod",
        "ModTeam",
        "hauntadmin",
        "haunt_official",
        "HauntOfficial",
        "h4unt",
        "moderator42",
        "xxadministratorxx",
        "5taff",
        "SupportDesk",
    ],
)
def test_impersonation_in_leet_and_look_alike_forms(name: str) -> None:
    hit = fake_matcher().find(name)

    assert hit is not None
    assert hit.category is Category.IMPERSONATION


@pytest.mark.parametrize(
    "name",
    [
        "remodel",
        "modulus",
        "badminton",
        "staffordshire",
        "supporter",
        "officially",
        "haunted_house",
        "haunting",
    ],
)
def test_words_containing_short_impersonation_terms_pass(name: str) -> None:
    assert fake_matcher().find(name) is None


def test_find_decodes_symbols_and_spaces_that_only_check_requests_contain() -> None:
    assert fake_matcher().find("b @ d w 0 r d") is not None
    assert fake_matcher().find("$hate$") is not None


def test_leet_decoding_is_bounded() -> None:
    name = "1|!1|!1|!1|!8@$5$@8|1!0"  # every character ambiguous or decodable

    start = time.perf_counter()
    forms = name_forms(name * 10)
    fake_matcher().find(name * 10)
    elapsed = time.perf_counter() - start

    assert len(forms) <= 4
    assert elapsed < 0.5


def test_empty_blocklist_finds_nothing() -> None:
    assert matcher_build([], []).find("badword") is None


def test_short_terms_stay_token_only_although_m_is_matched_as_rn() -> None:
    matcher = matcher_build([make_term(term="gum", match_mode=MatchMode.SUBSTRING)], [])

    assert matcher.find("chewinggumfan") is None
    assert matcher.find("gum_fan") is not None
