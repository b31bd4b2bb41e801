-- Indexes of the new schema. The loader drops secondary indexes while a table loads and rebuilds
-- them afterwards, so declaring them here costs nothing during the migration.

-- Logins are now unique regardless of case.
CREATE UNIQUE INDEX users_login_name_key ON users (lower(login_name));
CREATE UNIQUE INDEX products_sku_key ON products (sku);

CREATE INDEX products_category_id_idx ON products (category_id);
CREATE INDEX orders_user_id_idx ON orders (user_id);
CREATE INDEX orders_placed_at_idx ON orders (placed_at);
CREATE INDEX order_items_order_id_idx ON order_items (order_id);
CREATE INDEX order_items_product_id_idx ON order_items (product_id);
