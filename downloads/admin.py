from django.contrib import admin

from downloads.models import Download


@admin.register(Download)
class DownloadAdmin(admin.ModelAdmin):
    """Read-only: downloads are asked for on the Models page; the admin shows their history."""

    list_display = ["file_name", "repo", "state", "total_bytes", "created_by", "created_at"]
    list_filter = ["state"]
    search_fields = ["file_name", "repo", "url"]
    readonly_fields = [f.name for f in Download._meta.fields]

    def has_add_permission(self, request):
        return False
