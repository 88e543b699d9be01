from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from apps.moderation.engine.types import Category
from apps.moderation.models import (
    AllowedWord,
    BlockedTerm,
    UsernameAppeal,
    UsernameModerationEvent,
    UsernameReview,
    UsernameWhitelist,
)
from apps.moderation.services import (
    blocklist_import,
    username_appeal_approve,
    username_appeal_deny,
    username_review_decide,
)
from haunt.errors import DomainError


def _moderator(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


class BlocklistImportForm(forms.Form):
    file = forms.FileField(help_text="CSV: term,category[,severity[,match_mode]] — or one term a line.")
    default_category = forms.ChoiceField(
        choices=[(c.value, c.value) for c in Category], initial=Category.PROFANITY
    )


@admin.register(BlockedTerm)
class BlockedTermAdmin(admin.ModelAdmin):
    list_display = ["term", "category", "severity", "match_mode", "is_active", "created_at"]
    list_filter = ["category", "severity", "match_mode", "is_active"]
    list_editable = ["is_active"]
    search_fields = ["term", "notes"]
    change_list_template = "admin/moderation/blockedterm/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "import/", self.admin_site.admin_view(self.import_view), name="moderation_blockedterm_import"
            )
        ]
        return extra + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        form = BlocklistImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                text = form.cleaned_data["file"].read().decode("utf-8")
                result = blocklist_import(text=text, default_category=form.cleaned_data["default_category"])
            except UnicodeDecodeError:
                self.message_user(request, "The file is not UTF-8 text.", messages.ERROR)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Imported: {result.created} added, {result.updated} updated.")
                return HttpResponseRedirect(reverse("admin:moderation_blockedterm_changelist"))
        context = {**self.admin_site.each_context(request), "form": form, "title": "Import blocked terms"}
        return TemplateResponse(request, "admin/moderation/blockedterm/import.html", context)


@admin.register(AllowedWord)
class AllowedWordAdmin(admin.ModelAdmin):
    list_display = ["word", "blocked_term", "reason", "created_at"]
    search_fields = ["word", "reason"]
    raw_id_fields = ["blocked_term"]


@admin.register(UsernameAppeal)
class UsernameAppealAdmin(admin.ModelAdmin):
    list_display = ["requested_name", "user", "category", "status", "created_at", "decided_by"]
    list_filter = ["status", "category"]
    search_fields = ["requested_name", "user__username", "message"]
    readonly_fields = [
        "user",
        "requested_name",
        "message",
        "category",
        "status",
        "decided_by",
        "decided_at",
        "created_at",
    ]
    actions = ["approve", "approve_and_allow_word", "deny"]

    def _approve(self, request: HttpRequest, queryset: QuerySet[UsernameAppeal], *, allow_word: bool) -> None:
        approved = 0
        for appeal in queryset.select_related("user"):
            try:
                username_appeal_approve(appeal=appeal, moderator=_moderator(request), allow_word=allow_word)
                approved += 1
            except DomainError as exc:
                self.message_user(request, f"{appeal}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Approved {approved} appeal(s).", messages.SUCCESS)

    @admin.action(description="Approve: whitelist the name for that user")
    def approve(self, request: HttpRequest, queryset: QuerySet[UsernameAppeal]) -> None:
        self._approve(request, queryset, allow_word=False)

    @admin.action(description="Approve and add the name to the allowed words (for everyone)")
    def approve_and_allow_word(self, request: HttpRequest, queryset: QuerySet[UsernameAppeal]) -> None:
        self._approve(request, queryset, allow_word=True)

    @admin.action(description="Deny")
    def deny(self, request: HttpRequest, queryset: QuerySet[UsernameAppeal]) -> None:
        denied = 0
        for appeal in queryset.select_related("user"):
            try:
                username_appeal_deny(appeal=appeal, moderator=_moderator(request))
                denied += 1
            except DomainError as exc:
                self.message_user(request, f"{appeal}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Denied {denied} appeal(s).", messages.SUCCESS)


@admin.register(UsernameReview)
class UsernameReviewAdmin(admin.ModelAdmin):
    list_display = ["display_name", "user", "category", "severity", "source", "status", "created_at"]
    list_filter = ["status", "severity", "category", "source"]
    search_fields = ["display_name", "user__username"]
    actions = ["keep", "reset"]

    @admin.action(description="Keep the name (whitelist it for that user)")
    def keep(self, request: HttpRequest, queryset: QuerySet[UsernameReview]) -> None:
        for review in queryset:
            username_review_decide(review=review, moderator=_moderator(request), keep=True)
        self.message_user(request, "Kept.", messages.SUCCESS)

    @admin.action(description="Reset the name (the user picks a new one)")
    def reset(self, request: HttpRequest, queryset: QuerySet[UsernameReview]) -> None:
        for review in queryset:
            username_review_decide(review=review, moderator=_moderator(request), keep=False)
        self.message_user(request, "Reset.", messages.SUCCESS)


@admin.register(UsernameWhitelist)
class UsernameWhitelistAdmin(admin.ModelAdmin):
    list_display = ["display_name", "user", "approved_by", "approved_at"]
    search_fields = ["display_name", "user__username"]
    raw_id_fields = ["user", "appeal"]


@admin.register(UsernameModerationEvent)
class UsernameModerationEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "attempted_name", "code", "category", "severity", "term", "user", "source"]
    list_filter = ["code", "category", "severity", "source"]
    search_fields = ["attempted_name", "user__username"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
