from django.urls import URLPattern, URLResolver, path

from apps.markets import api_seeding

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/crypto/<str:id>/seed", api_seeding.SeedingJobCreateApi.as_view(), name="crypto-seed"),
]
