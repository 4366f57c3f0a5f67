"""A reasoning model's thinking: told apart from the answer, and left out of later turns' context."""

import pytest
from django.contrib.auth import get_user_model

from chat.models import Conversation, Message, Role, Status
from chat.reasoning import answer_only, split_reasoning
from chat.services import _history

HARMONY = ("<|channel|>analysis<|message|>Add them: 4.<|end|>"
           "<|start|>assistant<|channel|>final<|message|>It is **4**.<|return|>")


def test_it_splits_a_think_block_from_the_answer():
    parts = split_reasoning("<think>\nCount: one, two.\n</think>\n\nTwo.")
    assert parts == ("Count: one, two.", True, "Two.")


def test_a_think_block_still_being_written_has_no_answer_yet():
    assert split_reasoning("  <think>Let me") == ("Let me", False, "")


def test_a_template_that_opened_think_in_the_prompt_leaves_only_the_close():
    assert split_reasoning("Hmm, carry the one.</think>The sum is 12.") == (
        "Hmm, carry the one.", True, "The sum is 12.")


def test_text_that_merely_mentions_the_tags_is_all_answer():
    text = "Reasoning models wrap thoughts in <think> and </think> tags."
    assert split_reasoning(text) == (None, True, text)
    assert answer_only("No thinking here.") == "No thinking here."


def test_it_reads_gpt_oss_channels():
    assert split_reasoning(HARMONY) == ("Add them: 4.", True, "It is **4**.")
    assert split_reasoning("<|channel|>analysis<|message|>Add th") == ("Add th", False, "")
    assert split_reasoning("<|channel|>analysis<|message|>Done.<|end|>") == ("Done.", True, "")


@pytest.mark.django_db
def test_the_history_for_the_next_turn_leaves_the_thinking_out():
    user = get_user_model().objects.create_user("thinker", password="a long password for tests")
    conversation = Conversation.objects.create(owner=user, system_prompt="Be brief.")
    Message.objects.create(conversation=conversation, role=Role.USER, content="1+1?")
    Message.objects.create(conversation=conversation, role=Role.ASSISTANT, content="<think>Easy.</think>\n\n2.")
    Message.objects.create(conversation=conversation, role=Role.USER, content="2+2?")
    Message.objects.create(conversation=conversation, role=Role.ASSISTANT, content=HARMONY)
    Message.objects.create(conversation=conversation, role=Role.USER, content="3+3?")
    # Stopped while thinking: no answer, so nothing of it goes to the model.
    Message.objects.create(conversation=conversation, role=Role.ASSISTANT, content="<think>Hmm",
                           status=Status.STOPPED)
    last = Message.objects.create(conversation=conversation, role=Role.USER, content="And 4+4?")
    assert _history(conversation, last) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "It is **4**."},
        {"role": "user", "content": "3+3?"},
        {"role": "user", "content": "And 4+4?"},
    ]
    # The stored replies keep their thinking: it is shown, and exported.
    assert Message.objects.filter(content__startswith="<think>Easy.").exists()
