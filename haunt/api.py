"""Project-level API: auth, the caller's account, notifications and health."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.trading.models import Profile
from apps.trading.services import profile_ensure, profile_preferences_update
from haunt.accounts import api_token_get_or_create
from haunt.authentication import request_user
from haunt.errors import DomainError
from haunt.health import health_report
from haunt.models import Notification
from haunt.pagination import StandardPagination
from haunt.serializers import StrictSerializer
from haunt.services import notification_mark_read


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    http_status = 400


class ProfileOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()
    theme = serializers.CharField()
    defaultTimeframe = serializers.CharField(source="default_timeframe")
    indicators = serializers.ListField(child=serializers.CharField())


class UserOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    isStaff = serializers.BooleanField(source="is_staff")
    dateJoined = serializers.DateTimeField(source="date_joined")


class AuthTokenCreateApi(APIView):
    """Exchange a username and password for an API token (REST and WebSocket)."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_scope = "auth"

    class InputSerializer(StrictSerializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        user = UserOutputSerializer()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request, **serializer.validated_data)
        if user is None:
            raise InvalidCredentials("Wrong username or password.")
        data = {"token": api_token_get_or_create(user=user), "user": user}
        return Response(self.OutputSerializer(data).data)


class MeApi(APIView):
    """The signed-in user, their profile and this node."""

    class InputSerializer(StrictSerializer):
        theme = serializers.ChoiceField(choices=Profile.Theme.choices, required=False)
        defaultTimeframe = serializers.ChoiceField(
            choices=Profile.Timeframe.choices, required=False, source="default_timeframe"
        )
        indicators = serializers.ListField(
            child=serializers.CharField(max_length=32), max_length=32, required=False
        )

    class OutputSerializer(serializers.Serializer):
        user = UserOutputSerializer()
        profile = ProfileOutputSerializer()
        node = inline_serializer(
            "NodeIdentity", {"id": serializers.CharField(), "region": serializers.CharField()}
        )

    def _respond(self, request: Request, profile: Profile) -> Response:
        node = {"id": settings.HAUNT_NODE_ID, "region": settings.HAUNT_NODE_REGION}
        return Response(self.OutputSerializer({"user": request.user, "profile": profile, "node": node}).data)

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        return self._respond(request, profile_ensure(user=request_user(request)))

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def patch(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        profile = profile_preferences_update(user=request_user(request), **serializer.validated_data)
        return self._respond(request, profile)


class NotificationListApi(APIView):
    """The caller's notifications, newest first."""

    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.ModelSerializer):
        createdAt = serializers.DateTimeField(source="created_at")
        readAt = serializers.DateTimeField(source="read_at", allow_null=True)

        class Meta:
            model = Notification
            fields = ["id", "kind", "title", "body", "data", "createdAt", "readAt"]

    @extend_schema(responses={200: OutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        paginator = StandardPagination()
        queryset = Notification.objects.filter(user=request_user(request))
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class NotificationReadApi(APIView):
    """Mark some of the caller's notifications read."""

    class InputSerializer(StrictSerializer):
        ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=500)

    class OutputSerializer(serializers.Serializer):
        marked = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        marked = notification_mark_read(
            user=request_user(request), notification_ids=serializer.validated_data["ids"]
        )
        return Response({"marked": marked})


class HealthApi(APIView):
    """Liveness of the database, Redis, channel layer and Celery workers on this node."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []

    class OutputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=["ok", "degraded"])
        down = serializers.ListField(child=serializers.CharField())
        node = serializers.CharField()
        region = serializers.CharField()
        version = serializers.CharField()
        components = serializers.DictField(child=serializers.DictField())

    @extend_schema(responses={200: OutputSerializer, 503: OutputSerializer})
    def get(self, request: Request) -> Response:
        report = health_report()
        components: dict[str, Any] = {
            name: {"ok": component.ok, **component.detail} for name, component in report.components.items()
        }
        body = {
            "status": "ok" if report.healthy else "degraded",
            "down": report.down,
            "node": settings.HAUNT_NODE_ID,
            "region": settings.HAUNT_NODE_REGION,
            "version": settings.HAUNT_VERSION,
            "components": components,
        }
        return Response(
            body, status=status.HTTP_200_OK if report.healthy else status.HTTP_503_SERVICE_UNAVAILABLE
        )
