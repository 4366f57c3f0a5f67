from django.urls import path

from advisor import views

app_name = "advisor"
urlpatterns = [
    path("", views.index, name="index"),
    path("matrix/", views.matrix, name="matrix"),
    path("this-server/", views.server_gpu, name="server_gpu"),
    path("models/<str:slug>/", views.model_detail, name="model"),
    path("share/", views.share, name="share"),
    path("r/<slug:slug>/", views.shared, name="shared"),
]
