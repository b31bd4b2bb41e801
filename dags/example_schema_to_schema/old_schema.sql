-- The OLD database of the example: a small shop, as it has grown over the years.
-- Loaded by scripts/seed_demo.py (make demo, tests) and by docker-compose (postgres-old init script).
-- The refactored schema the migration builds is in ddl/; mapping.yaml says how old feeds new.

-- Kept as is by the refactor: the new table has the same name and columns (no mapping entry).
CREATE TABLE categories (
    id    serial PRIMARY KEY,
    name  text NOT NULL,
    slug  text NOT NULL UNIQUE
);

-- Becomes "users": login/display names renamed, settings become jsonb, legacy_flags dropped.
CREATE TABLE tb_user (
    id            serial PRIMARY KEY,
    username      varchar(40) NOT NULL UNIQUE,
    full_name     text,                      -- often NULL or blank: display_name falls back
    nickname      text,
    email         varchar(255) NOT NULL,     -- mixed case: lower-cased on the way
    settings      text,                      -- JSON in a text column; NULL or '' when unset
    legacy_flags  integer NOT NULL DEFAULT 0, -- not carried over
    created       timestamp without time zone NOT NULL DEFAULT now()  -- UTC, without a time zone
);

-- Becomes "products": prices move from integer cents to numeric(12,2).
CREATE TABLE product (
    id           serial PRIMARY KEY,
    sku          varchar(32) NOT NULL UNIQUE,
    title        text NOT NULL,
    category_id  integer NOT NULL REFERENCES categories (id),
    price_cents  integer NOT NULL,
    active       boolean NOT NULL DEFAULT true
);

-- Keeps its name: one-letter status codes become words, "placed" becomes "placed_at" (timestamptz).
CREATE TABLE orders (
    id       serial PRIMARY KEY,
    user_id  integer NOT NULL REFERENCES tb_user (id),
    status   char(1) NOT NULL DEFAULT 'N' CHECK (status IN ('N', 'P', 'S', 'C')),
    placed   timestamp without time zone NOT NULL DEFAULT now(),
    note     text
);

-- Becomes "order_items" (the largest table).
CREATE TABLE order_line (
    id                bigserial PRIMARY KEY,
    order_id          integer NOT NULL REFERENCES orders (id),
    product_id        integer NOT NULL REFERENCES product (id),
    qty               smallint NOT NULL,
    unit_price_cents  integer NOT NULL
);
CREATE INDEX order_line_order_id_idx ON order_line (order_id);
