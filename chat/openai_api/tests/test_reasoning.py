"""A reasoning model's text is split into reasoning_content and content, as llama-server's deepseek format does,
at the level of the chat template (no small reasoning model is installed here): the template decides whether
the reply starts inside <think>, and the splitter gives the same answer however the text is cut into tokens."""

import pytest

from advisor.gguf_info import read_gguf
from advisor.modelfiles import default_model_file
from chat.openai_api.reasoning import ReasoningSplitter, split, template_opens_thinking

# The shape of DeepSeek-R1's template (its distills, and QwQ, do the same): the generation prompt ends inside a
# thinking block, so the model writes its reasoning first and closes it with </think>.
FORCED_OPEN_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<|User|>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<|Assistant|>{{ m['content'] }}<|end|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|><think>\n{% endif %}")
# Qwen3's shape: the model opens <think> itself (the template only mentions the tags for history).
SELF_OPENING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if '</think>' in m['content'] %}"
    "{{ m['content'].split('</think>')[-1] }}{% else %}{{ m['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

REPLY_FORCED = "The user greets me. I should greet back.\n</think>\n\nHello! How can I help?"
REPLY_SELF = "<think>\nA greeting. Answer kindly.\n</think>\n\nHello there!"


def stream(text: str, forced_open: bool, size: int) -> tuple[str, str]:
    splitter = ReasoningSplitter(forced_open)
    reasoning, content = [], []
    for start in range(0, len(text), size):
        r, c = splitter.feed(text[start:start + size])
        reasoning.append(r)
        content.append(c)
    r, c = splitter.finish()
    return "".join(reasoning) + r, "".join(content) + c


def test_a_template_that_ends_inside_think_starts_the_reply_in_reasoning():
    assert template_opens_thinking(FORCED_OPEN_TEMPLATE)
    assert not template_opens_thinking(SELF_OPENING_TEMPLATE)


def test_smollm2s_own_template_does_not_open_thinking():
    template = read_gguf(default_model_file()).chat_template
    assert template and "<|im_start|>" in template
    assert not template_opens_thinking(template)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_forced_open_reply_is_split_however_it_streams(size):
    forced = template_opens_thinking(FORCED_OPEN_TEMPLATE)
    assert stream(REPLY_FORCED, forced, size) == ("The user greets me. I should greet back.\n",
                                                  "Hello! How can I help?")


@pytest.mark.parametrize("size", [1, 2, 5, 1000])
def test_a_reply_that_opens_think_itself_is_split(size):
    forced = template_opens_thinking(SELF_OPENING_TEMPLATE)
    assert stream(REPLY_SELF, forced, size) == ("\nA greeting. Answer kindly.\n", "Hello there!")


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_a_plain_reply_is_all_content(size):
    text = "Hello! <b>not a tag</b> and a < sign"
    assert stream(text, False, size) == ("", text)


def test_reasoning_cut_short_stays_reasoning():
    assert split("<think>still thinking when max_tokens ran o", False) == ("still thinking when max_tokens ran o", "")
    assert split("", False) == ("", "")
