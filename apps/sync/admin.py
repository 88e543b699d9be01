"""Sync back office: peers (secret write-only), conflicts side by side with manual resolution,
dead letters (retry), sync sessions, entity settings (editable), cursors and metrics (read-only)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.sync import services as data_plane
from apps.sync.models import (
    EntitySyncConfig,
    NodeMetric,
    Peer,
    PeerAck,
    SyncConflict,
    SyncCursor,
    SyncDeadLetter,
    SyncSession,
    current_node_id,
)
from haunt.errors import HauntError

# --- Peers -----------------------------------------------------------------------------------


class PeerForm(forms.ModelForm):
    url = forms.URLField(
        max_length=300, assume_scheme="https", help_text=Peer._meta.get_field("url").help_text
    )
    secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The link's shared HMAC secret (the same on both nodes). Stored encrypted; "
        "leave empty to keep the current one.",
    )

    class Meta:
        model = Peer
        fields = ["name", "url", "region", "is_primary", "key_id", "enabled"]

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data.get("secret", "")
        if not secret and not self.instance.secret_encrypted:
            raise forms.ValidationError("A new peer needs a secret.")
        if secret and len(secret) < 32:
            raise forms.ValidationError("Use at least 32 characters (e.g. `openssl rand -hex 32`).")
        return secret

    def save(self, commit: bool = True) -> Peer:
        peer: Peer = super().save(commit=False)
        if self.cleaned_data.get("secret"):
            peer.secret = self.cleaned_data["secret"]
        if commit:
            peer.save()
        return peer


@admin.register(Peer)
class PeerAdmin(admin.ModelAdmin):
    form = PeerForm
    list_display = ["name", "url", "region", "is_primary", "enabled", "key_id", "created_at"]
    list_filter = ["enabled", "is_primary", "region"]
    list_editable = ["enabled"]
    search_fields = ["name", "url", "key_id"]
    readonly_fields = ["created_at", "updated_at"]

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)


# --- Conflicts -------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return "—" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def conflict_table(conflict: SyncConflict) -> SafeString:
    """Both versions and the result field by field; fields where the versions differ are marked."""
    a, b, result = conflict.a_data or {}, conflict.b_data or {}, conflict.result_data or {}
    me = current_node_id()

    def label(side: str, node: str, hlc: int, deleted: bool) -> str:
        where = " — local" if node == me else ""
        return f"{side}: {node}{where} (hlc {hlc}{', deleted' if deleted else ''})"

    rows = format_html_join(
        "",
        '<tr{}><th scope="row">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>',
        (
            (
                SafeString(' class="sync-differs" style="background:#fff3cd"')
                if a.get(f) != b.get(f)
                else "",
                f,
                _cell(a.get(f)),
                _cell(b.get(f)),
                _cell(result.get(f)),
            )
            for f in sorted(set(a) | set(b) | set(result))
        ),
    )
    return format_html(
        '<table class="sync-conflict"><thead><tr><th>field</th><th>{}</th><th>{}</th><th>result ({})</th>'
        "</tr></thead><tbody>{}</tbody></table>",
        label("A", conflict.a_node, conflict.a_hlc, conflict.a_deleted),
        label("B", conflict.b_node, conflict.b_hlc, conflict.b_deleted),
        conflict.winner,
        rows,
    )


def _actor(request: HttpRequest) -> Any:
    return request.user


class ConflictResolveForm(forms.Form):
    choice = forms.ChoiceField(
        choices=[
            ("local", "Keep the local version"),
            ("remote", "Keep the remote version"),
            ("merged", "Merged"),
        ],
        widget=forms.RadioSelect,
    )
    merged = forms.JSONField(required=False, help_text="For merged: the row's fields as a JSON object.")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if data.get("choice") == "merged" and not isinstance(data.get("merged"), dict):
            self.add_error("merged", "A JSON object is required for a merged resolution.")
        return data


@admin.register(SyncConflict)
class SyncConflictAdmin(admin.ModelAdmin):
    list_display = ["row_id", "entity", "strategy", "status", "winner", "a_node", "b_node", "created_at"]
    list_filter = ["status", "strategy", "entity"]
    search_fields = ["row_id", "entity"]
    date_hierarchy = "created_at"
    actions = ["keep_local", "keep_remote"]
    readonly_fields = (
        "side_by_side",
        "entity",
        "row_id",
        "strategy",
        "status",
        "winner",
        "resolution",
        "resolved_by",
        "resolved_at",
        "created_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # saving the form would be a replicated write: resolve through the actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # conflicts are the same on every node; retention removes them

    @admin.display(description="Versions side by side (differing fields highlighted)")
    def side_by_side(self, obj: SyncConflict) -> SafeString:
        resolve = reverse("admin:sync_syncconflict_resolve", args=[obj.pk])
        return format_html('{}<p><a class="button" href="{}">Resolve…</a></p>', conflict_table(obj), resolve)

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<path:object_id>/resolve/",
                self.admin_site.admin_view(self.resolve_view),
                name="sync_syncconflict_resolve",
            )
        ]
        return extra + super().get_urls()

    def _resolve(self, request: HttpRequest, conflict: SyncConflict, choice: str, merged: Any = None) -> bool:
        try:
            data_plane.conflict_resolve(
                conflict=conflict, choice=choice, merged=merged, actor=_actor(request)
            )
        except HauntError as exc:
            self.message_user(request, f"{conflict}: {exc.message}", messages.WARNING)
            return False
        return True

    def _resolve_many(self, request: HttpRequest, queryset: QuerySet[SyncConflict], choice: str) -> None:
        done = sum(self._resolve(request, conflict, choice) for conflict in queryset)
        self.message_user(
            request, f"Resolved {done} conflict(s): kept the {choice} version.", messages.SUCCESS
        )

    @admin.action(description="Keep the local version")
    def keep_local(self, request: HttpRequest, queryset: QuerySet[SyncConflict]) -> None:
        self._resolve_many(request, queryset, "local")

    @admin.action(description="Keep the remote version")
    def keep_remote(self, request: HttpRequest, queryset: QuerySet[SyncConflict]) -> None:
        self._resolve_many(request, queryset, "remote")

    def resolve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        conflict = self.get_object(request, object_id)
        if conflict is None:
            return HttpResponseRedirect(reverse("admin:sync_syncconflict_changelist"))
        initial = {"choice": "merged", "merged": conflict.result_data or conflict.b_data}
        form = ConflictResolveForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            merged = data.get("merged") if data["choice"] == "merged" else None
            if self._resolve(request, conflict, data["choice"], merged):
                self.message_user(request, f"Resolved {conflict} ({data['choice']}).", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:sync_syncconflict_change", args=[conflict.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Resolve {conflict}",
            "conflict": conflict,
            "table": conflict_table(conflict),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/sync/syncconflict/resolve.html", context)


# --- Dead letters, sessions, settings, cursors, metrics ----------------------------------------


@transaction.atomic
def dead_letters_requeue(*, letters: QuerySet[SyncDeadLetter]) -> int:
    """Park the given dead letters again and run a retry pass now; returns how many applied."""
    letters.exclude(status=SyncDeadLetter.Status.RESOLVED).update(
        status=SyncDeadLetter.Status.PARKED, attempts=0, updated_at=timezone.now()
    )
    return int(data_plane.dead_letters_retry())


@admin.register(SyncDeadLetter)
class SyncDeadLetterAdmin(admin.ModelAdmin):
    list_display = [
        "entity",
        "entity_id",
        "peer",
        "lane",
        "seq",
        "reason",
        "status",
        "attempts",
        "created_at",
    ]
    list_filter = ["status", "reason", "entity", "peer"]
    search_fields = ["entity_id", "detail"]
    actions = ["retry"]
    readonly_fields = [f.name for f in SyncDeadLetter._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry the selected rows")
    def retry(self, request: HttpRequest, queryset: QuerySet[SyncDeadLetter]) -> None:
        try:
            applied = dead_letters_requeue(letters=queryset)
        except HauntError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(
            request, f"Retried: {applied} row(s) applied; the others stay parked.", messages.SUCCESS
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SyncSession)
class SyncSessionAdmin(ReadOnlyAdmin):
    list_display = [
        "peer",
        "kind",
        "lane",
        "outcome",
        "started_at",
        "finished_at",
        "batches",
        "rows",
        "bytes",
    ]
    list_filter = ["outcome", "kind", "peer", "lane"]
    search_fields = ["error"]
    date_hierarchy = "started_at"


@admin.register(EntitySyncConfig)
class EntitySyncConfigAdmin(admin.ModelAdmin):
    list_display = [
        "entity",
        "model",
        "lane",
        "priority_weight",
        "strategy",
        "append_only",
        "owner",
        "enabled",
    ]
    list_editable = ["lane", "priority_weight", "strategy", "enabled"]
    list_filter = ["strategy", "append_only", "enabled"]
    search_fields = ["entity", "model"]


@admin.register(SyncCursor)
class SyncCursorAdmin(ReadOnlyAdmin):
    list_display = ["peer", "lane", "seq", "head", "progress", "rows_applied", "updated_at"]
    list_filter = ["peer", "lane"]

    @admin.display(description="Backlog %")
    def progress(self, obj: SyncCursor) -> float:
        return obj.progress_percent


@admin.register(PeerAck)
class PeerAckAdmin(ReadOnlyAdmin):
    list_display = ["peer", "lane", "seq", "updated_at"]
    list_filter = ["peer"]


@admin.register(NodeMetric)
class NodeMetricAdmin(ReadOnlyAdmin):
    list_display = [
        "sampled_at",
        "peer",
        "lane",
        "lag_seconds",
        "rows_per_second",
        "batch_p99_ms",
        "breaker_state",
        "clock_offset_ms",
        "queue_depth",
        "healthy",
    ]
    list_filter = ["peer", "lane", "healthy", "breaker_state"]
    date_hierarchy = "sampled_at"
