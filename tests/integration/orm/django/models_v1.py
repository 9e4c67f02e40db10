"""shop/models.py before the change: customers and their orders (the hot table)."""
from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)


class Order(models.Model):
    total = models.IntegerField(default=0)
