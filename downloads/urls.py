from django.urls import path

from downloads import views

app_name = "downloads"

urlpatterns = [
    path("start/", views.start, name="start"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("cancel/", views.cancel_file, name="cancel_file"),
    path("<int:pk>/retry/", views.retry, name="retry"),
    path("delete/", views.delete, name="delete"),
]
