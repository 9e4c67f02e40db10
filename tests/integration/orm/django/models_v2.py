"""shop/models.py after the change: an order gains a foreign key to its customer, and a note."""
from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)


class Order(models.Model):
    total = models.IntegerField(default=0)
    customer = models.ForeignKey(Customer, null=True, on_delete=models.SET_NULL)
    note = models.CharField(max_length=200, null=True)
