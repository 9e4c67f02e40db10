"""A Django project for the ORM bookkeeping test: one app (shop), PostgreSQL from the
environment the test sets (ORM_TEST_PG*), DEFAULT_AUTO_FIELD as startproject writes it."""
import os

SECRET_KEY = "pgvalve-orm-test-only"
DEBUG = False
INSTALLED_APPS = ["shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ["ORM_TEST_PGHOST"],
        "PORT": os.environ["ORM_TEST_PGPORT"],
        "NAME": os.environ["ORM_TEST_PGDATABASE"],
        "USER": os.environ["ORM_TEST_PGUSER"],
        "PASSWORD": os.environ["ORM_TEST_PGPASSWORD"],
        "OPTIONS": {"sslmode": "disable"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
