"""Reasoning text apart from the answer, as llama-server's `--reasoning-format deepseek` does: what a reasoning
model writes between <think> and </think> goes to `reasoning_content`, the rest to `content`.

A template that opens the thinking itself (DeepSeek-R1's and QwQ's end the prompt with "<think>\\n") makes the
model start inside it: `forced_open` says so, from the model's own chat template. Plain Python, no Django.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"


def template_opens_thinking(template: str) -> bool:
    """Whether this chat template ends the generation prompt inside <think>. False when it cannot be rendered."""
    if not template or OPEN not in template:
        return False
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def raise_exception(message):
            raise ValueError(message)

        environment.globals["raise_exception"] = raise_exception
        prompt = environment.from_string(template).render(
            messages=[{"role": "user", "content": "Hello"}], add_generation_prompt=True, bos_token="", eos_token="")
    except Exception:
        return False
    return prompt.rstrip().endswith(OPEN)


class ReasoningSplitter:
    """Feed it the reply's text as it streams; it returns (reasoning, content) pieces of what can be told apart
    so far, holding back only what may be the start of a tag."""

    def __init__(self, forced_open: bool = False):
        self.state = "reasoning" if forced_open else "start"  # start: may still open with <think>
        self.pending = ""

    def feed(self, text: str) -> tuple[str, str]:
        self.pending += text
        reasoning, content = [], []
        while self.pending:
            if self.state == "start":
                stripped = self.pending.lstrip()
                if stripped.startswith(OPEN):
                    self.pending = stripped[len(OPEN):]
                    self.state = "reasoning"
                elif OPEN.startswith(stripped):  # "", "<", "<th"...: not decided yet
                    break
                else:
                    self.state = "content"
            elif self.state == "reasoning":
                end = self.pending.find(CLOSE)
                if end >= 0:
                    reasoning.append(self.pending[:end])
                    self.pending = self.pending[end + len(CLOSE):]
                    self.state = "after"  # the blank lines after </think> belong to neither
                else:
                    hold = _partial_suffix(self.pending, CLOSE)
                    reasoning.append(self.pending[:len(self.pending) - hold])
                    self.pending = self.pending[len(self.pending) - hold:]
                    break
            elif self.state == "after":
                self.pending = self.pending.lstrip()
                if self.pending:
                    self.state = "content"
            else:
                content.append(self.pending)
                self.pending = ""
        return "".join(reasoning), "".join(content)

    def finish(self) -> tuple[str, str]:
        """The end of the reply: what was held back, where it belongs."""
        rest, self.pending = self.pending, ""
        if self.state == "reasoning":
            return rest, ""
        return "", rest


def split(text: str, forced_open: bool = False) -> tuple[str, str]:
    """A whole reply -> (reasoning_content, content)."""
    splitter = ReasoningSplitter(forced_open)
    reasoning, content = splitter.feed(text)
    more_reasoning, more_content = splitter.finish()
    return reasoning + more_reasoning, content + more_content


def _partial_suffix(text: str, tag: str) -> int:
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
