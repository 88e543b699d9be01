"""Username API: change, check, appeal."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.moderation.models import UsernameAppeal
from apps.moderation.selectors import username_appeals_of
from apps.moderation.services import (
    username_appeal_submit,
    username_change,
    username_check,
)
from haunt.authentication import request_user
from haunt.pagination import StandardPagination
from haunt.serializers import StrictSerializer

# Generous for the raw input; the engine enforces the real limit after normalising.
RAW_NAME_MAX = 128


class UsernameChangeApi(APIView):
    """Change your public username (at most once every 24 hours; refused attempts don't count)."""

    class InputSerializer(StrictSerializer):
        username = serializers.CharField(max_length=RAW_NAME_MAX, trim_whitespace=False)

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        flagged = serializers.BooleanField(help_text="Accepted, but a moderator will look at it.")
        changedAt = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def put(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        profile, decision = username_change(
            user=request_user(request), raw=serializer.validated_data["username"]
        )
        body = {
            "username": profile.username,
            "flagged": decision.severity is not None,
            "changedAt": profile.username_changed_at,
        }
        return Response(self.OutputSerializer(body).data)


class UsernameCheckApi(APIView):
    """Check a name without changing anything (rate limited so the list can't be probed out)."""

    throttle_scope = "username_check"

    class InputSerializer(StrictSerializer):
        username = serializers.CharField(max_length=RAW_NAME_MAX, trim_whitespace=False)

    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        code = serializers.CharField()
        reason = serializers.CharField()
        severity = serializers.CharField(allow_null=True)
        category = serializers.CharField(allow_null=True)
        available = serializers.BooleanField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check = username_check(user=request_user(request), raw=serializer.validated_data["username"])
        body = {
            "ok": check.ok,
            "code": check.code,
            "reason": check.reason,
            "severity": check.decision.severity,
            "category": check.decision.category,
            "available": check.available,
        }
        return Response(self.OutputSerializer(body).data)


class UsernameAppealApi(APIView):
    """Appeal a refused name with a message; list your appeals."""

    class InputSerializer(StrictSerializer):
        username = serializers.CharField(max_length=RAW_NAME_MAX, trim_whitespace=False)
        message = serializers.CharField(max_length=1000)

    class OutputSerializer(serializers.ModelSerializer):
        username = serializers.CharField(source="requested_name")
        moderatorNote = serializers.CharField(source="moderator_note")
        createdAt = serializers.DateTimeField(source="created_at")
        decidedAt = serializers.DateTimeField(source="decided_at", allow_null=True)

        class Meta:
            model = UsernameAppeal
            fields = [
                "id",
                "username",
                "message",
                "category",
                "status",
                "moderatorNote",
                "createdAt",
                "decidedAt",
            ]

    @extend_schema(responses={200: OutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        paginator = StandardPagination()
        page = paginator.paginate_queryset(
            username_appeals_of(user_id=request_user(request).pk), request, view=self
        )
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        appeal = username_appeal_submit(
            user=request_user(request),
            raw=serializer.validated_data["username"],
            message=serializer.validated_data["message"],
        )
        return Response(self.OutputSerializer(appeal).data, status=status.HTTP_201_CREATED)
