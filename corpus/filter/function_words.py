"""Function words of common languages, for the `prose` rule's function-word ratio.

Each list holds frequent purely grammatical words of its language: articles, prepositions,
conjunctions, auxiliaries and personal pronouns. Words that are also the vocabulary of navigation
and interface text ("more", "about", "up", "out", "all", "new", "my", "home") and one-letter words
are left out on purpose: menus and link lists use the first, and the second match stray letters of
symbol noise and code. Running text in these languages has roughly a fifth to a third of its words
in its list; keyword spam, menus, tag clouds and symbol noise have next to none. Code, tables and
lists inside a real document lower the ratio, but the prose around them keeps it above the
threshold (docs/filter.md gives the measured distributions).
"""

from __future__ import annotations

FUNCTION_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the of and to in is that for it as was with be by on not this are or from at which but have an had "
              "they were their has been if will would who so than its these into them should could does must",
        "es": "de la que el en los se del las un por con una su para es al lo como pero sus le ha si sin sobre "
              "este entre cuando esta ser son también fue había era porque hay puede está están donde les nos",
        "fr": "de la le et les des en un du une que est pour qui dans par pas au sur ne se il ce sont avec ou son "
              "aux elle mais nous vous leur été je sa ses cette comme ont être ils peut ces entre sans",
        "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an werden "
              "aus er hat dass sie nach wird bei einer um am sind wie einem einen zum war haben oder aber zur durch",
        "it": "di il la che in per un del non una si da con della al dei come ma sono lo delle nel anche gli alla "
              "se ha questo nella suo dal tra essere sua loro",
        "pt": "de que do da em um para com não uma os no se na por as dos como mas foi ao ele das tem seu sua ou "
              "ser quando nos está também pelo pela isso ela entre era sem",
        "nl": "de en van het een in is dat op te zijn voor met die niet aan er om ook als dan maar bij of uit "
              "wordt door naar kan worden over tot ze hij was deze heeft",
    }.items()
}
