"""A site that starts again ends the replies its last run was writing: none stays `streaming` forever."""

import pytest
from django.contrib.auth import get_user_model

from chat.models import Conversation, Message, Role, Status
from llmsite import serve


@pytest.mark.django_db
def test_replies_left_streaming_by_the_last_run_end_as_interrupted_with_their_text(capsys):
    owner = get_user_model().objects.create_user("restart", password="a long test password")
    conversation = Conversation.objects.create(owner=owner, title="t")
    Message.objects.create(conversation=conversation, role=Role.USER, content="Hello?")
    cut = Message.objects.create(conversation=conversation, role=Role.ASSISTANT, content="Half an ans",
                                 status=Status.STREAMING)
    done = Message.objects.create(conversation=conversation, role=Role.ASSISTANT, content="Whole.",
                                  status=Status.COMPLETE)

    serve.end_interrupted_replies()

    cut.refresh_from_db()
    done.refresh_from_db()
    assert (cut.status, cut.content, cut.error) == (Status.ERROR, "Half an ans",
                                                    "The server restarted before this reply finished.")
    assert cut.finished_at is not None
    assert done.status == Status.COMPLETE and done.error == ""
    assert "now marked as interrupted: 1" in capsys.readouterr().out
    serve.end_interrupted_replies()
    assert capsys.readouterr().out == "", "nothing left to end: nothing said"
