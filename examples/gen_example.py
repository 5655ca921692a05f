#!/usr/bin/env python3
"""Writes examples/contracts.json and examples/usage.csv, deterministically.

The usage is judged at NOW (see README.md): a few hundred hourly records for AWS, Microsoft
and Google customers, most of them fine, some with the mistakes metergate exists to catch.
Run from anywhere: python3 examples/gen_example.py
"""
import csv
import json
import os
import random
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = datetime(2026, 3, 31, 23, 50, tzinfo=timezone.utc)
rng = random.Random(20260331)


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(h, m=0, day=31):
    return datetime(2026, 3, day, h, m, tzinfo=timezone.utc)


AWS_PRODUCT = "prod-logstream"
AZ_PRODUCT = "contoso-analytics-saas"
GCP_PRODUCT = "logstream.endpoints.acme-public.cloud.goog"

contracts = [
    # AWS
    {"marketplace": "aws", "product": AWS_PRODUCT, "customer": "cust-acme", "status": "active",
     "starts_at": "2025-11-01T00:00:00Z", "customer_identifier": "Xk8JmQ2pLz9",
     "dimensions": [{"name": "api_calls"}, {"name": "data_gb", "unit": "5"}, {"name": "seats"}]},
    {"marketplace": "aws", "product": AWS_PRODUCT, "customer": "cust-globex", "status": "active",
     "starts_at": "2026-01-15T00:00:00Z", "aws_account_id": "123456789012",
     "license_arn": "arn:aws:license-manager::123456789012:license:l-0a1b2c3d4e5f67890",
     "dimensions": [{"name": "api_calls"}, {"name": "data_gb", "unit": "5"}]},
    {"marketplace": "aws", "product": AWS_PRODUCT, "customer": "cust-wayne", "status": "active",
     "starts_at": "2025-12-01T00:00:00Z", "aws_account_id": "345678901234",
     "license_arn": "arn:aws:license-manager::345678901234:license:l-5f4e3d2c1b0a98765",
     "dimensions": [{"name": "api_calls"}, {"name": "data_gb", "unit": "5"}]},
    {"marketplace": "aws", "product": AWS_PRODUCT, "customer": "cust-cyberdyne", "status": "active",
     "starts_at": "2026-03-01T00:00:00Z", "customer_identifier": "Jd4LqP9wXc3",
     "dimensions": [{"name": "api_calls"}, {"name": "seats"}]},
    {"marketplace": "aws", "product": AWS_PRODUCT, "customer": "cust-initech", "status": "cancelled",
     "starts_at": "2025-06-01T00:00:00Z", "cancelled_at": "2026-03-31T23:20:00Z",
     "customer_identifier": "Rt5NvW8qKe2",
     "dimensions": [{"name": "api_calls"}, {"name": "data_gb", "unit": "5"}]},
    {"marketplace": "aws", "product": AWS_PRODUCT, "customer": "cust-umbrella", "status": "cancelled",
     "starts_at": "2025-09-01T00:00:00Z", "cancelled_at": "2026-03-31T12:00:00Z",
     "customer_identifier": "Pq3ZsY7uHb1",
     "dimensions": [{"name": "api_calls"}]},
    {"marketplace": "aws", "product": AWS_PRODUCT, "customer": "cust-hooli", "status": "pending",
     "starts_at": "2026-03-31T00:00:00Z", "aws_account_id": "210987654321",
     "license_arn": "arn:aws:license-manager::210987654321:license:l-99887766554433221",
     "dimensions": [{"name": "api_calls"}]},
    # Microsoft
    {"marketplace": "azure", "product": AZ_PRODUCT, "customer": "contoso-eu", "status": "active",
     "starts_at": "2025-10-01T00:00:00Z", "plan": "gold",
     "resource_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
     "dimensions": [{"name": "events_1k"}, {"name": "premium_hours", "unit": "0.5"}]},
    {"marketplace": "azure", "product": AZ_PRODUCT, "customer": "fabrikam", "status": "active",
     "starts_at": "2026-02-01T00:00:00Z", "plan": "silver",
     "resource_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
     "dimensions": [{"name": "events_1k"}]},
    {"marketplace": "azure", "product": AZ_PRODUCT, "customer": "adventure-works", "status": "active",
     "starts_at": "2025-11-15T00:00:00Z", "plan": "gold",
     "resource_id": "c56a4180-65aa-42ec-a945-5fd21dec0538",
     "dimensions": [{"name": "events_1k"}, {"name": "premium_hours", "unit": "0.5"}]},
    {"marketplace": "azure", "product": AZ_PRODUCT, "customer": "northwind", "status": "suspended",
     "starts_at": "2025-08-01T00:00:00Z", "plan": "gold",
     "resource_id": "3b241101-e2bb-4255-8caf-4136c566a962",
     "dimensions": [{"name": "events_1k"}, {"name": "premium_hours", "unit": "0.5"}]},
    {"marketplace": "azure", "product": AZ_PRODUCT, "customer": "tailspin", "status": "cancelled",
     "starts_at": "2025-12-01T00:00:00Z", "cancelled_at": "2026-03-31T18:00:00Z", "plan": "gold",
     "resource_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
     "dimensions": [{"name": "events_1k"}]},
    # Google
    {"marketplace": "gcp", "product": GCP_PRODUCT, "customer": "acct-wonka", "status": "active",
     "starts_at": "2026-01-01T00:00:00Z", "usage_reporting_id": "project_number:493847561234",
     "dimensions": [{"name": "requests", "type": "int"},
                    {"name": "storage_gib_hours", "type": "decimal"}]},
    {"marketplace": "gcp", "product": GCP_PRODUCT, "customer": "acct-stark", "status": "active",
     "starts_at": "2026-02-10T00:00:00Z", "usage_reporting_id": "project:stark-industries-prod",
     "dimensions": [{"name": "requests", "type": "int", "unit": "100"}]},
    {"marketplace": "gcp", "product": GCP_PRODUCT, "customer": "acct-oscorp", "status": "cancelled",
     "starts_at": "2025-07-01T00:00:00Z", "cancelled_at": "2026-03-31T23:00:00Z",
     "usage_reporting_id": "project_number:102938475610",
     "dimensions": [{"name": "requests", "type": "int"}]},
]

COLUMNS = ["record_id", "marketplace", "product", "customer", "dimension", "quantity",
           "start_time", "end_time", "plan", "team"]
rows = []
TEAMS = ["platform", "search", "billing", "ingest"]


def add(mp, product, customer, dim, qty, start, end="", plan="", note=None, **over):
    row = {"record_id": "", "marketplace": mp, "product": product, "customer": customer,
           "dimension": dim, "quantity": str(qty), "start_time": start if isinstance(start, str) else ts(start),
           "end_time": end if isinstance(end, str) else ts(end), "plan": plan,
           "team": rng.choice(TEAMS)}
    row.update(over)
    rows.append(row)


# --- good traffic -------------------------------------------------------------------------
# AWS: one record per customer, dimension and hour, 18:00..23:00 (6 h look-back).
for h in range(18, 24):
    minute = 20 if h == 18 else rng.choice([0, 5, 10, 15])
    for cust, dims in [("cust-acme", ["api_calls", "data_gb", "seats"]),
                       ("cust-globex", ["api_calls", "data_gb"]),
                       ("cust-wayne", ["api_calls", "data_gb"]),
                       ("cust-cyberdyne", ["api_calls", "seats"])]:
        for d in dims:
            if d == "data_gb":
                q = rng.randint(1, 400) * 5
            elif d == "seats":
                q = rng.randint(1, 60)
            else:
                q = rng.randint(0, 250000)
            add("aws", AWS_PRODUCT, cust, d, q, at(h, minute))
# cust-initech cancelled at 23:20: usage before it may still go until 00:20.
for h in range(18, 23):
    add("aws", AWS_PRODUCT, "cust-initech", "api_calls", rng.randint(100, 9000), at(h, 30))
# Microsoft: hourly events for the whole day (24 h look-back on the hour).
for h in range(0, 24):
    add("azure", AZ_PRODUCT, "contoso-eu", "events_1k", f"{rng.randint(10, 9000) / 10:.1f}", at(h, 2), plan="gold")
    if h % 2 == 0:
        add("azure", AZ_PRODUCT, "contoso-eu", "premium_hours", f"{rng.randint(1, 16) / 2:.1f}", at(h, 40), plan="gold")
    add("azure", AZ_PRODUCT, "fabrikam", "events_1k", f"{rng.randint(10, 9000) / 10:.1f}", at(h, 7))
    add("azure", AZ_PRODUCT, "adventure-works", "events_1k", f"{rng.randint(10, 9000) / 10:.1f}", at(h, 9))
    add("azure", AZ_PRODUCT, "adventure-works", "premium_hours", f"{rng.randint(1, 16) / 2:.1f}", at(h, 9))
for h in range(0, 18):
    add("azure", AZ_PRODUCT, "tailspin", "events_1k", f"{rng.randint(10, 500) / 10:.1f}", at(h, 11), plan="gold")
# Google: chained hourly intervals; the last ones are recent, earlier ones are reported late.
for h in range(19, 23):
    add("gcp", GCP_PRODUCT, "acct-wonka", "requests", rng.randint(1000, 90000), at(h), at(h + 1) if h < 23 else at(23, 45))
    add("gcp", GCP_PRODUCT, "acct-wonka", f"{GCP_PRODUCT}/storage_gib_hours", f"{rng.randint(100, 99999) / 100:.2f}", at(h), at(h + 1))
    add("gcp", GCP_PRODUCT, "acct-stark", "requests", rng.randint(1, 900) * 100, at(h), at(h + 1))
add("gcp", GCP_PRODUCT, "acct-wonka", "requests", rng.randint(1000, 90000), at(23), at(23, 45))
add("gcp", GCP_PRODUCT, "acct-stark", "requests", rng.randint(1, 900) * 100, at(23), at(23, 45))
for h in range(20, 23):
    add("gcp", GCP_PRODUCT, "acct-oscorp", "requests", rng.randint(1000, 9000), at(h), at(h + 1))

# --- mistakes -----------------------------------------------------------------------------
mistakes = []


def bad(*a, **k):
    add(*a, **k)
    mistakes.append(rows.pop())


# Backdated beyond the look-back.
bad("aws", AWS_PRODUCT, "cust-acme", "api_calls", 5000, at(16, 45))
bad("aws", AWS_PRODUCT, "cust-globex", "api_calls", 1200, at(11, 0))
bad("azure", AZ_PRODUCT, "contoso-eu", "events_1k", "12.5", at(22, 15, day=30), plan="gold")
# Duplicates in the same hour (the first one stands).
bad("aws", AWS_PRODUCT, "cust-acme", "api_calls", 777, at(21, 40))  # different quantity
bad("azure", AZ_PRODUCT, "fabrikam", "events_1k", "3.0", at(14, 50))
# Unit remainders.
bad("aws", AWS_PRODUCT, "cust-globex", "data_gb", 17, at(22, 30), record_id="")
bad("azure", AZ_PRODUCT, "contoso-eu", "premium_hours", "1.3", at(23, 41), plan="gold")
bad("gcp", GCP_PRODUCT, "acct-stark", "requests", 1250, at(22, 50), at(23, 10))
# Dimension typos.
bad("aws", AWS_PRODUCT, "cust-acme", "api_call", 40, at(22, 5))
bad("aws", AWS_PRODUCT, "cust-globex", "Data_GB", 10, at(21, 5))
bad("azure", AZ_PRODUCT, "fabrikam", "event_1k", "4.0", at(20, 3))
bad("gcp", GCP_PRODUCT, "acct-wonka", "request", 400, at(22, 10), at(22, 20))
# Cancelled, pending, suspended, unknown customers.
bad("aws", AWS_PRODUCT, "cust-umbrella", "api_calls", 300, at(11, 0))
bad("aws", AWS_PRODUCT, "cust-initech", "api_calls", 900, at(23, 25))
bad("aws", AWS_PRODUCT, "cust-hooli", "api_calls", 10, at(22, 0))
bad("azure", AZ_PRODUCT, "northwind", "events_1k", "8.0", at(21, 0), plan="gold")
bad("azure", AZ_PRODUCT, "tailspin", "events_1k", "2.0", at(19, 0), plan="gold")
bad("aws", AWS_PRODUCT, "cust-acmee", "seats", 3, at(22, 0))
bad("gcp", GCP_PRODUCT, "acct-oscorp", "requests", 500, at(23, 0), at(23, 30))
# Wrong plan.
bad("azure", AZ_PRODUCT, "contoso-eu", "events_1k", "22.0", at(23, 12), plan="silver")
# Google intervals: reversed, overlapping, in the future.
bad("gcp", GCP_PRODUCT, "acct-wonka", "requests", 10, at(21, 30), at(21, 0))
bad("gcp", GCP_PRODUCT, "acct-wonka", "requests", 10, at(21, 30), at(22, 30))
bad("gcp", GCP_PRODUCT, "acct-stark", "requests", 100, at(23, 45), datetime(2026, 4, 1, 0, 30, tzinfo=timezone.utc))
bad("gcp", GCP_PRODUCT, "acct-wonka", "requests", "12.5", at(23, 0), at(23, 30))
# Form errors.
bad("aws", AWS_PRODUCT, "cust-acme", "seats", "", at(20, 0))            # missing quantity
bad("aws", AWS_PRODUCT, "cust-acme", "seats", 4, "2026-03-31T21:00:00")  # no time zone
bad("aws", AWS_PRODUCT, "cust-globex", "api_calls", "1,5", at(20, 10))  # decimal comma
bad("aws", AWS_PRODUCT, "cust-globex", "api_calls", "12.5", at(19, 10))  # not an integer
bad("aws", AWS_PRODUCT, "cust-acme", "seats", -2, at(19, 0))            # negative
bad("AWS", AWS_PRODUCT, "cust-acme", "api_calls", 10, at(20, 50))        # uppercase marketplace
bad("aws", AWS_PRODUCT, "cust-acme", "api_calls", 10, datetime(2026, 4, 1, 2, 0, tzinfo=timezone.utc))  # future
bad("azure", AZ_PRODUCT, "contoso-eu", "events_1k", "0", at(22, 20), plan="gold")  # zero on Azure
bad("aws", AWS_PRODUCT, "cust-acme", "api_calls", 5, "03/31/2026 21:00:00")  # Tackle's date form

# Spread the mistakes through the good traffic, deterministically.
for m in mistakes:
    rows.insert(rng.randint(len(rows) // 10, len(rows)), m)
# A duplicate that repeats an earlier record exactly (same quantity: AWS bills it once).
first_acme = next(i for i, r in enumerate(rows) if r["customer"] == "cust-acme" and r["dimension"] == "seats" and r["marketplace"] == "aws")
rows.insert(first_acme + 40, dict(rows[first_acme]))

for i, r in enumerate(rows):
    r["record_id"] = f"u-{i + 1:04d}"

with open(os.path.join(HERE, "contracts.json"), "w", newline="\n") as f:
    json.dump(contracts, f, indent=2)
    f.write("\n")

with open(os.path.join(HERE, "usage.csv"), "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(COLUMNS)
    for i, r in enumerate(rows):
        w.writerow([r[c] for c in COLUMNS])
        if i == 150:
            # A row with a missing field (a broken export): reported, the run goes on.
            f.write("u-broken,aws,prod-logstream,cust-acme,api_calls,12\n")
print(f"wrote {len(rows) + 1} records")
