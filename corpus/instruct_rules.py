"""Names of the rules that turn pages into instruction pairs (see corpus.instruct).

Kept apart so the command line can list them without importing the builder and its libraries.
"""

RULES = ("glossary_term", "title_body", "faq_heading")
