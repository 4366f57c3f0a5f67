"""Reply versions (messages form a tree: parent, selected), why a reply ended (finish_reason), and presets.

Existing conversations become one path: each message's parent is the message before it."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def link_existing_messages(apps, schema_editor):
    Message = apps.get_model("chat", "Message")
    Conversation = apps.get_model("chat", "Conversation")
    for conversation_id in Conversation.objects.values_list("id", flat=True).iterator():
        previous = None
        for message in Message.objects.filter(conversation_id=conversation_id).order_by("created_at", "id"):
            if message.role == "system":
                continue
            if previous is not None:
                message.parent_id = previous
                message.save(update_fields=["parent"])
            previous = message.id


class Migration(migrations.Migration):

    dependencies = [
        ("chat", "0002_modelconfig_labels_for_people"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="children", to="chat.message"),
        ),
        migrations.AddField(
            model_name="message",
            name="selected",
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name="message",
            name="finish_reason",
            field=models.CharField(blank=True, choices=[("", "Ended"), ("length", "Stopped at the length limit")],
                                   default="", max_length=10),
        ),
        migrations.RunPython(link_existing_messages, migrations.RunPython.noop),
        migrations.CreateModel(
            name="Preset",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=80, verbose_name="name")),
                ("system_prompt", models.TextField(blank=True, max_length=20000, verbose_name="system prompt")),
                ("options", models.JSONField(blank=True, default=dict)),
                ("is_default", models.BooleanField(default=False, verbose_name="default for new conversations")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("owner", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="presets",
                                            to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["name", "id"]},
        ),
        migrations.AddConstraint(
            model_name="preset",
            constraint=models.UniqueConstraint(fields=("owner", "name"), name="preset_name_per_owner"),
        ),
        migrations.AddConstraint(
            model_name="preset",
            constraint=models.UniqueConstraint(condition=models.Q(("is_default", True)), fields=("owner",),
                                               name="one_default_preset_per_owner"),
        ),
    ]
