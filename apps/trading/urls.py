from apps.trading import api_accounts, api_bots, api_orders, api_positions

app_name = "trading"

urlpatterns = [
    *api_accounts.urlpatterns,
    *api_orders.urlpatterns,
    *api_positions.urlpatterns,
    *api_bots.urlpatterns,
]
