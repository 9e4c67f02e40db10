-- 20240611093000_order_integrity
-- Foreign keys for the order tables, as the ORMs emitted them: Prisma's
-- migrate diff, Rails (strong_migrations style: NOT VALID, then VALIDATE),
-- Django's sqlmigrate, and a pg_dump of the reporting schema.
BEGIN;

-- Prisma: AddForeignKey
ALTER TABLE "Order" ADD CONSTRAINT "Order_customerId_fkey" FOREIGN KEY ("customerId") REFERENCES "Customer"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Order" ADD CONSTRAINT "Order_shippingAddressId_fkey" FOREIGN KEY ("shippingAddressId") REFERENCES "Address"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "OrderItem" ADD CONSTRAINT "OrderItem_orderId_fkey" FOREIGN KEY ("orderId") REFERENCES "Order"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "OrderItem" ADD CONSTRAINT "OrderItem_productId_fkey" FOREIGN KEY ("productId") REFERENCES "Product"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Payment" ADD CONSTRAINT "Payment_orderId_fkey" FOREIGN KEY ("orderId") REFERENCES "Order"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Shipment" ADD CONSTRAINT "Shipment_orderId_fkey" FOREIGN KEY ("orderId") REFERENCES "Order"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Refund" ADD CONSTRAINT "Refund_paymentId_fkey" FOREIGN KEY ("paymentId") REFERENCES "Payment"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Order" ADD CONSTRAINT "Order_couponId_fkey" FOREIGN KEY ("couponId") REFERENCES "Coupon"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- CreateIndex
CREATE INDEX "OrderItem_orderId_idx" ON "OrderItem"("orderId");

-- CreateIndex
CREATE UNIQUE INDEX "Customer_email_key" ON "Customer"("email");

-- Rails: add_foreign_key ..., validate: false / validate_foreign_key
ALTER TABLE "line_items" ADD CONSTRAINT "fk_rails_11e15d5c6b" FOREIGN KEY ("cart_id") REFERENCES "carts" ("id") NOT VALID;
ALTER TABLE "line_items" VALIDATE CONSTRAINT "fk_rails_11e15d5c6b";
ALTER TABLE "line_items" ADD CONSTRAINT "fk_rails_4d5b7c2a91" FOREIGN KEY ("variant_id") REFERENCES "variants" ("id") NOT VALID;
ALTER TABLE "line_items" VALIDATE CONSTRAINT "fk_rails_4d5b7c2a91";
ALTER TABLE "variants" ADD CONSTRAINT "fk_rails_9a1f3e0c55" FOREIGN KEY ("product_id") REFERENCES "products" ("id") ON DELETE CASCADE NOT VALID;
ALTER TABLE "variants" VALIDATE CONSTRAINT "fk_rails_9a1f3e0c55";
ALTER TABLE "carts" ADD CONSTRAINT "fk_rails_0c7e2d8b14" FOREIGN KEY ("user_id") REFERENCES "users" ("id") NOT VALID;
ALTER TABLE "carts" VALIDATE CONSTRAINT "fk_rails_0c7e2d8b14";

--
-- Django: Alter field product on review
--
ALTER TABLE "shop_review" ADD CONSTRAINT "shop_review_product_id_7e2a3f0d_fk_shop_product_id" FOREIGN KEY ("product_id") REFERENCES "shop_product" ("id") DEFERRABLE INITIALLY DEFERRED;
SET CONSTRAINTS "shop_review_product_id_7e2a3f0d_fk_shop_product_id" IMMEDIATE;
CREATE INDEX "shop_review_product_id_7e2a3f0d" ON "shop_review" ("product_id");
--
-- Alter field author on review
--
ALTER TABLE "shop_review" ADD CONSTRAINT "shop_review_author_id_1b9c44e2_fk_auth_user_id" FOREIGN KEY ("author_id") REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED;
SET CONSTRAINTS "shop_review_author_id_1b9c44e2_fk_auth_user_id" IMMEDIATE;
CREATE INDEX "shop_review_author_id_1b9c44e2" ON "shop_review" ("author_id");

-- pg_dump of the reporting schema
ALTER TABLE ONLY reporting.invoices
    ADD CONSTRAINT invoices_account_id_fkey FOREIGN KEY (account_id) REFERENCES reporting.accounts(id);
ALTER TABLE ONLY reporting.invoice_lines
    ADD CONSTRAINT invoice_lines_invoice_id_fkey FOREIGN KEY (invoice_id) REFERENCES reporting.invoices(id) ON DELETE CASCADE;
ALTER TABLE ONLY reporting.invoice_lines
    ADD CONSTRAINT invoice_lines_tax_code_fkey FOREIGN KEY (tax_code, tax_region) REFERENCES reporting.tax_codes(code, region) MATCH FULL;
ALTER TABLE ONLY reporting.payments
    ADD CONSTRAINT payments_invoice_id_fkey FOREIGN KEY (invoice_id) REFERENCES reporting.invoices(id);

-- hand-written: one without a name, one composite
ALTER TABLE reporting.credit_notes ADD FOREIGN KEY (invoice_id) REFERENCES reporting.invoices (id);
ALTER TABLE "Order" ADD CONSTRAINT "Order_total_nonnegative" CHECK ("total" >= 0);
ALTER TABLE "Customer" ALTER COLUMN "email" SET NOT NULL;

COMMIT;
