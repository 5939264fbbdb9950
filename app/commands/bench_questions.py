"""What `voxdesk bench` asks: spoken questions per group, and the answers check's questions.

Spoken questions come in two groups because they take two different paths: the local
skills answer the first without the LLM, the second can only be answered by it. Each
factual question carries a regular expression of the words a right answer contains.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Answered by the local skills (time, date, sums) — no LLM on the path.
SKILLS_QUESTIONS = (
    "What time is it?",
    "What is seventeen times twenty three?",
    "What is the date today?",
    "What is twelve plus thirty?",
    "What is fifteen percent of two hundred?",
)

#: Everyday open questions only a language model can answer.
OPEN_QUESTIONS = (
    "What is the capital of France?",
    "Tell me a joke.",
    "How many legs does a spider have?",
    "What should I cook tonight?",
    "Who wrote Romeo and Juliet?",
    "How far away is the moon?",
)


@dataclass(frozen=True)
class FactualQuestion:
    text: str
    #: Case-insensitive regular expression; a reply matching it anywhere is right.
    expect: str


FACTUAL_QUESTIONS = (
    FactualQuestion("What is the capital of France?", r"\bparis\b"),
    FactualQuestion("How many legs does a spider have?", r"\beight\b|\b8\b"),
    FactualQuestion("Who wrote Romeo and Juliet?", r"shakespeare"),
    FactualQuestion("What is the capital of Japan?", r"\btokyo\b"),
    FactualQuestion("What is the largest planet in the solar system?", r"jupiter"),
    FactualQuestion("How many days are there in a week?", r"\bseven\b|\b7\b"),
    FactualQuestion("What colour is the sky on a clear day?", r"\bblue\b"),
    FactualQuestion("What is the freezing point of water in Celsius?", r"\bzero\b|\b0\b"),
    FactualQuestion("Which planet is known as the Red Planet?", r"\bmars\b"),
    FactualQuestion("What is the capital of Italy?", r"\brome\b"),
    FactualQuestion("How many continents are there?", r"\bseven\b|\b7\b"),
    FactualQuestion("What gas do plants take in from the air?", r"carbon dioxide|\bco2\b"),
    FactualQuestion("Who painted the Mona Lisa?", r"leonardo|da vinci"),
    FactualQuestion("What is the largest ocean on Earth?", r"pacific"),
    FactualQuestion("How many hours are there in a day?", r"twenty[- ]four|\b24\b"),
    FactualQuestion("What is the boiling point of water in Celsius?", r"\b100\b|one hundred|a hundred"),
    FactualQuestion("What is the capital of Germany?", r"\bberlin\b"),
    FactualQuestion("What animal is known as the king of the jungle?", r"\blions?\b"),
    FactualQuestion("How many months are there in a year?", r"\btwelve\b|\b12\b"),
    FactualQuestion("What is the chemical symbol for water?", r"h2o|h₂o"),
    FactualQuestion("Who was the first person to walk on the Moon?", r"armstrong"),
    FactualQuestion("What is the capital of Spain?", r"\bmadrid\b"),
    FactualQuestion("Which is the longest river in Africa?", r"\bnile\b"),
    FactualQuestion("What do bees make?", r"\bhoney\b"),
    FactualQuestion("How many sides does a triangle have?", r"\bthree\b|\b3\b"),
    FactualQuestion("What is the closest star to the Earth?", r"\bsun\b|proxima"),
    FactualQuestion("In which country are the pyramids of Giza?", r"egypt"),
    FactualQuestion("What language is mostly spoken in Brazil?", r"portuguese"),
    FactualQuestion("What is the capital of the United Kingdom?", r"\blondon\b"),
    FactualQuestion("How many minutes are there in an hour?", r"\bsixty\b|\b60\b"),
    FactualQuestion("What is the tallest mountain in the world?", r"everest"),
    FactualQuestion("Which metal is liquid at room temperature?", r"mercury"),
)

#: Open prompts: no right answer, judged for spoken length only.
OPEN_PROMPTS = (
    "Tell me a joke.",
    "What should I cook tonight?",
    "Give me a tip for sleeping better.",
    "What is a good name for a cat?",
    "How can I stay focused while working?",
)
