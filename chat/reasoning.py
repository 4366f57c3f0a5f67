"""A reasoning model's thinking, apart from its answer.

Reasoning models write their thinking before the answer, in one of these shapes (as the text arrives):

    <think>...</think>answer        Qwen3, DeepSeek-R1, and most others
    ...</think>answer               templates that open <think> in the prompt (no <think> before the close)
    <|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>final<|message|>answer   gpt-oss

Their chat templates leave the thinking of earlier turns out of the prompt (Qwen3's and DeepSeek-R1's cut
at </think>, gpt-oss's keeps only the final channel), so the history the worker gets has answers only.
static/js/chat-markdown.js applies the same rules to show the thinking folded; keep the two in step.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_HARMONY_HEAD = re.compile(r"(?:<\|start\|>assistant)?<\|channel\|>(\w+)[^<]*(?:<\|constrain\|>[^<]*)?<\|message\|>")
_HARMONY_END = re.compile(r"<\|(?:end|return|call)\|>")


class Parts(NamedTuple):
    reasoning: str | None  # None: the text has no thinking
    closed: bool  # False while the model is still thinking (or was stopped doing it)
    answer: str


def split_reasoning(text: str) -> Parts:
    stripped = text.lstrip()
    if stripped.startswith("<think>"):
        body = stripped[len("<think>"):]
        reasoning, found, answer = body.partition("</think>")
        if not found:
            return Parts(body.lstrip(), False, "")
        return Parts(reasoning.strip(), True, answer.lstrip())
    close = text.find("</think>")
    if close != -1 and text.rfind("<think>", 0, close) == -1:
        return Parts(text[:close].strip(), True, text[close + len("</think>"):].lstrip())
    if re.match(r"(?:<\|start\|>assistant)?<\|channel\|>", stripped):
        return _split_harmony(stripped)
    return Parts(None, True, text)


def _split_harmony(text: str) -> Parts:
    heads = list(_HARMONY_HEAD.finditer(text))
    thoughts: list[str] = []
    answer = ""
    closed = True
    for index, head in enumerate(heads):
        stop = heads[index + 1].start() if index + 1 < len(heads) else len(text)
        segment = text[head.end():stop]
        end = _HARMONY_END.search(segment)
        content = segment[: end.start()] if end else segment
        if head.group(1) == "final":
            answer += content
        else:
            thoughts.append(content.strip())
            closed = end is not None or index + 1 < len(heads)
    return Parts("\n\n".join(thoughts), closed or answer != "", answer)


def answer_only(text: str) -> str:
    """The text a later turn's prompt keeps of a reply: its answer, without the thinking."""
    return split_reasoning(text).answer
