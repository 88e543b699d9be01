from django.contrib import admin

from haunt.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "kind", "title", "read_at"]
    list_filter = ["kind"]
    search_fields = ["user__username", "title"]
    raw_id_fields = ["user"]
    date_hierarchy = "created_at"
