-- Sample tables for examples/postgres.yaml: psql -h 127.0.0.1 -U postgres -d test -f examples/postgres-seed.sql
-- Two weeks of hourly orders with a daily rhythm, a payments table, and a stale audit log.
drop schema if exists driftguard_example cascade;
create schema driftguard_example;
set search_path to driftguard_example;

create table orders (
    id          bigserial primary key,
    customer_id integer      not null,
    amount      numeric(10,2),
    status      text         not null,
    created_at  timestamptz  not null,
    updated_at  timestamptz  not null
);
insert into orders (customer_id, amount, status, created_at, updated_at)
select (random() * 5000)::int,
       round((random() * 200)::numeric, 2),
       (array['paid','paid','paid','refunded'])[1 + (random() * 3)::int],
       h + (random() * interval '59 minutes'),
       h + (random() * interval '59 minutes')
from generate_series(date_trunc('hour', now()) - interval '14 days', date_trunc('hour', now()) - interval '1 hour',
                     interval '1 hour') as h,
     generate_series(1, 20 + (30 * (1 + sin(extract(hour from h) / 24.0 * 2 * pi())))::int) as n;
create index on orders (created_at);

create table payments (
    id         bigserial primary key,
    order_id   bigint      not null,
    provider   text        not null,
    paid_at    timestamptz not null
);
insert into payments (order_id, provider, paid_at)
select id, (array['card','paypal','invoice'])[1 + (random() * 2)::int], created_at + interval '2 minutes'
from orders where status = 'paid';

create table audit_log (
    id        bigserial primary key,
    actor     text        not null,
    action    text        not null,
    logged_at timestamptz not null
);
insert into audit_log (actor, action, logged_at)
select 'system', 'sync', t
from generate_series(now() - interval '14 days', now() - interval '2 days', interval '15 minutes') as t;
analyze orders; analyze payments; analyze audit_log;
