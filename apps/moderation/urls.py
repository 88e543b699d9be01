from django.urls import path

from apps.moderation import api

app_name = "moderation"

urlpatterns = [
    path("username", api.UsernameChangeApi.as_view(), name="username"),
    path("username/check", api.UsernameCheckApi.as_view(), name="username-check"),
    path("username/appeals", api.UsernameAppealApi.as_view(), name="username-appeals"),
]
