from django.contrib import admin

from apps.storage.models import RetentionPolicy


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ["entity", "retention_days", "min_days", "max_days", "enabled", "description"]
    list_editable = ["retention_days", "enabled"]
