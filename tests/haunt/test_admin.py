import pytest

pytestmark = pytest.mark.django_db


def test_admin_is_branded_and_lists_operational_data(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)

    index = client.get("/admin/")
    exchanges = client.get("/admin/markets/exchange/")

    assert index.status_code == 200
    assert b"Haunt back office" in index.content
    assert exchanges.status_code == 200
