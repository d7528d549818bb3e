#!/usr/bin/env python3
"""Writes the demo scenario files for the Kingsmere & Alder Valley ICS (BRIEF.md section 8).

Every figure in the brief is reproduced from the plan (phased evenly) plus the listed
variances, so the files are derived, not typed: run `python3 deploy/demo/generate.py` after
changing this script and commit both. Each output line is an `icsctl` subcommand; `icsctl load`
posts them in order. Amounts are pounds (exact to the penny); all arithmetic here is in pence.

Outputs:
  kingsmere-2018-19.ics    the year, the four tranche assessments, the closes and the 2019/20
                           post-close gain share
  kingsmere-variant-b.ics  the same, except KCCG accrues only 450,000 of AVT's 600,000 extra
                           C5 activity in its M10 return (an AoB mismatch of 150,000)
"""
import os

Y = "2018/19"
POUND = 100  # pence


def gbp(pence):
    sign = "-" if pence < 0 else ""
    p = abs(pence)
    return f"{sign}{p // 100}" if p % 100 == 0 else f"{sign}{p // 100}.{p % 100:02d}"


def split(total, n=12):
    """Largest remainder over n equal parts, earlier parts first (matches Pence::split)."""
    base, rem = divmod(abs(total), n)
    parts = [base + (1 if i < rem else 0) for i in range(n)]
    return [-p for p in parts] if total < 0 else parts


def period(m, year=Y):
    return f"{year}-M{m}"


MEMBERS = [
    # code, name, kind, in CT, plan income, plan expenditure (pence)
    ("KCCG", "Kingsmere CCG", "commissioner", True, 900_000_000, 900_000_000),
    ("KHFT", "Kingsmere Hospitals NHS FT", "acute-trust", True, 420_000_000, 426_000_000),
    ("AVT", "Alder Valley NHS Trust", "acute-trust", True, 240_000_000, 243_600_000),
    ("KCHT", "Kingsmere Community Health NHS Trust", "community-trust", True, 96_000_000, 95_040_000),
    ("AKMH", "Alder & Kingsmere MH NHS FT", "mental-health-trust", True, 144_000_000, 142_560_000),
    ("KNPCN", "Kingsmere North PCN", "primary-care-network", False, 2_400_000, 2_400_000),
    ("KCC", "Kingsmere County Council", "local-authority", False, 240_000_000, 240_000_000),
]
MEMBERS = [(c, n, k, ct, i * POUND, e * POUND) for c, n, k, ct, i, e in MEMBERS]

# Contracts KCCG commissions: monthly value to the provider on plan (pence).
C3_PLAN_UNITS, C3_PRICE = 24_000, 3_000 * POUND
C5_FIXED, C5_PLAN_UNITS, C5_PRICE, C5_RATE_BP = 204_000_000 * POUND, 36_000, 2_000 * POUND, 5_000
CQUIN_BASE, CQUIN_BP = 312_000_000 * POUND, 250
CONTRACTS = {
    "C1": ("KCHT", "--block 84000000", "Community services block"),
    "C2": ("AKMH", "--block 126000000", "Mental health block"),
    "C3": ("KHFT", f"--activity-tariff units={C3_PLAN_UNITS},price={gbp(C3_PRICE)}", "Elective activity at tariff"),
    "C4": ("KHFT", "--block 240000000", "Urgent and emergency care fixed payment"),
    "CQ": ("KHFT", f"--cquin base={gbp(CQUIN_BASE)},rate=2.50%", "CQUIN 2.5% on 312,000,000 paid monthly on account"),
    "C5": ("AVT", f"--aligned fixed={gbp(C5_FIXED)},units={C5_PLAN_UNITS},price={gbp(C5_PRICE)},rate=50%", "Aligned incentive contract"),
    "C6": ("KNPCN", "--capitation per-head=48,population=50000,gain-share=50%,loss-share=50%", "Capitation with gain/loss share"),
}
MONTHLY = {
    "C1": split(84_000_000 * POUND),
    "C2": split(126_000_000 * POUND),
    "C3": split(C3_PLAN_UNITS * C3_PRICE),
    "C4": split(240_000_000 * POUND),
    "CQ": split(CQUIN_BASE * CQUIN_BP // 10_000),
    "C5": split(C5_FIXED),
    "C6": split(48 * POUND * 50_000),
}
C3_UNITS = {m: 2_000 for m in range(1, 13)} | {8: 2_300}
C5_UNITS = {m: 3_000 for m in range(1, 13)} | {10: 3_600}
AE_BP = {1: 9_100, 2: 9_040, 3: 8_850, 4: 9_020}  # by quarter

BCF_KCCG, BCF_KCC_REVENUE, BCF_DFG = 28_000_000 * POUND, 9_600_000 * POUND, 2_400_000 * POUND
BCF_REVENUE_SPEND = split(37_600_000 * POUND)
BCF_REVENUE_SPEND[11] += 600_000 * POUND  # the year-end overspend
BCF_DFG_SPEND = split(BCF_DFG)
BCF_KCCG_MONTHLY = split(BCF_KCCG)  # KCCG's expenditure on its contribution, accrued evenly
RISK_SHARE_EACH = 300_000 * POUND

# Variances against the even plan: (month, member, 'inc'|'exp') -> pence
VARIANCES = {
    (5, "KHFT", "exp"): 2_400_000 * POUND,
    (7, "KHFT", "exp"): -3_000_000 * POUND,
    (8, "KHFT", "inc"): 900_000 * POUND,
    (8, "KCCG", "exp"): 900_000 * POUND,
    (10, "AVT", "inc"): 600_000 * POUND,
    (10, "KCCG", "exp"): 600_000 * POUND,
    (11, "KCHT", "exp"): -540_000 * POUND,
    (12, "KCCG", "exp"): (300_000 - 780_000) * POUND,
    (12, "KCC", "exp"): 300_000 * POUND,
    (12, "KHFT", "inc"): -780_000 * POUND,
}
# AVT's M10 winter beds share the key with nothing else, so add it separately.
VARIANCES[(10, "AVT", "exp")] = 600_000 * POUND

# SSF evidence: system YTD before the fund vs system CT YTD (pence), by quarter.
SSF_EVIDENCE = {
    1: (-1_800_000 * POUND, -1_800_000 * POUND),
    2: (-6_000_000 * POUND, -3_600_000 * POUND),
    3: (-4_800_000 * POUND, -5_400_000 * POUND),
    4: (-6_960_000 * POUND, -7_200_000 * POUND),
}


def contract_value(code, m):
    """What the contract is worth in month m, with activity variances (pence)."""
    value = MONTHLY[code][m - 1]
    if code == "C3":
        value += (C3_UNITS[m] - split(C3_PLAN_UNITS)[m - 1]) * C3_PRICE
    if code == "C5":
        value += (C5_UNITS[m] - split(C5_PLAN_UNITS)[m - 1]) * C5_PRICE * C5_RATE_BP // 10_000
    return value


def month_lines(m, variant_b):
    out = [f"# ---- {period(m)} ----"]
    q, quarter_end = (m - 1) // 3 + 1, m % 3 == 0
    # Contract postings: activity, invoices and payments, all from the same event on both sides.
    out.append(f"record-activity --contract C3 --period {period(m)} --units {C3_UNITS[m]}")
    out.append(f"record-activity --contract C5 --period {period(m)} --units {C5_UNITS[m]}")
    for code in CONTRACTS:
        value = contract_value(code, m)
        inv = f"{code}-{m:02d}"
        out.append(f"raise-invoice --contract {code} --invoice {inv} --period {period(m)} --amount {gbp(value)}")
        out.append(f"record-payment --contract {code} --invoice {inv} --period {period(m)} --amount {gbp(value)}")
    if m == 12:
        out.append(f"reconcile-cquin --contract CQ --period {period(m)} --achievement 90%")
    # Pooled budget: contributions quarterly in advance, spend monthly.
    if m in (1, 4, 7, 10):
        out.append(f"pay-contribution --budget BCF --partner KCCG --period {period(m)} --amount 7000000")
        out.append(f"pay-contribution --budget BCF --partner KCC --period {period(m)} --amount 3000000")
    out.append(f"record-spend --budget BCF --scheme COMMUNITY --period {period(m)} --amount {gbp(BCF_REVENUE_SPEND[m - 1])}")
    out.append(f"record-spend --budget BCF --scheme DFG --period {period(m)} --amount {gbp(BCF_DFG_SPEND[m - 1])}")
    if m == 12:
        out.append(f"settle-risk-share --budget BCF --period {period(m)}")
        out.append(f"close-budget --budget BCF --period {period(m)}")
    # Operational metrics: A&E four-hour performance at the two acute trusts.
    for code in ("KHFT", "AVT"):
        bp = AE_BP[q]
        out.append(f"report-metric --member {code} --period {period(m)} --metric ae-four-hour --value {bp // 100}.{bp % 100:02d}%")
    # Monthly returns: plan phasing plus variances; balances with every in-system counterparty.
    for code, _, _, _, income, expenditure in MEMBERS:
        inc = split(income)[m - 1] + VARIANCES.get((m, code, "inc"), 0)
        exp = split(expenditure)[m - 1] + VARIANCES.get((m, code, "exp"), 0)
        balances = return_balances(code, m)
        if variant_b and code == "KCCG" and m == 10:
            exp -= 150_000 * POUND
            balances["AVT"]["expenditure"] -= 150_000 * POUND
        parts = [f"submit-return --member {code} --period {period(m)} --income {gbp(inc)} --expenditure {gbp(exp)}"]
        for other, b in balances.items():
            fields = ",".join(f"{k}={gbp(v)}" for k, v in b.items() if v)
            parts.append(f"--balance {other}:{fields}")
        out.append(" ".join(parts))
    if quarter_end:
        actual, plan = SSF_EVIDENCE[q]
        bp = AE_BP[q]
        out.append(
            f"assess-tranche --fund SSF --quarter {q} --evidence FIN:actual={gbp(actual)},control-total={gbp(plan)}"
            f" --evidence AE:performance={bp // 100}.{bp % 100:02d}%"
        )
    if q > 1 and m % 3 == 1:
        out.append(f"pay-tranche --fund SSF --quarter {q - 1} --period {period(m)}")
    out.append(f"close-period --period {period(m)}")
    return out


def return_balances(code, m):
    """Balances a member's return states with each other member in month m (pence)."""
    balances = {}

    def add(other, key, amount):
        b = balances.setdefault(other, {"income": 0, "expenditure": 0, "receivables": 0, "payables": 0})
        b[key] += amount

    for contract, (provider, _, _) in CONTRACTS.items():
        value = contract_value(contract, m)
        if code == "KCCG":
            add(provider, "expenditure", value)
        elif code == provider:
            add("KCCG", "income", value)
    if m == 12 and code == "KCCG":
        add("KHFT", "expenditure", -780_000 * POUND)  # CQUIN reconciliation
        add("KHFT", "receivables", 780_000 * POUND)   # paid on account, now owed back
        add("KCC", "expenditure", RISK_SHARE_EACH)    # BCF overspend share
        add("KCC", "payables", RISK_SHARE_EACH)
    if m == 12 and code == "KHFT":
        add("KCCG", "income", -780_000 * POUND)
        add("KCCG", "payables", 780_000 * POUND)
    if code == "KCCG":
        add("KCC", "expenditure", BCF_KCCG_MONTHLY[m - 1])
    return balances


def scenario(variant_b):
    out = [
        "# Kingsmere & Alder Valley ICS, financial year 2018/19 (fictional; BRIEF.md section 8).",
        "# Generated by deploy/demo/generate.py; load with: icsctl load <this file>",
    ]
    if variant_b:
        out.append("# Variant B: KCCG accrues only 450,000 of AVT's 600,000 extra C5 activity in M10.")
    out.append(f'establish-system --system kav --name "Kingsmere & Alder Valley ICS" --first-year {Y}')
    for code, name, kind, in_ct, _, _ in MEMBERS:
        flag = " --in-control-total" if in_ct else ""
        out.append(f'admit-member --member {code} --name "{name}" --kind {kind}{flag}')
    for code, _, _, _, income, expenditure in MEMBERS:
        out.append(f"agree-plan --member {code} --year {Y} --income {gbp(income)} --expenditure {gbp(expenditure)}")
    for contract, (provider, model, description) in CONTRACTS.items():
        out.append(
            f'agree-contract --contract {contract} --commissioner KCCG --provider {provider} --year {Y} {model} --description "{description}"'
        )
    out.append(
        f'establish-budget --budget BCF --name "Better Care Fund" --host KCC --year {Y} --partner KCCG --partner KCC'
        ' --scheme "COMMUNITY:Community health and social care" --scheme "DFG:Disabled Facilities Grant:ring-fenced"'
        " --overspend-share KCCG:50% --overspend-share KCC:50% --underspend-share KCCG:70% --underspend-share KCC:30%"
    )
    out.append(f"pledge --budget BCF --partner KCCG --amount {gbp(BCF_KCCG)}")
    out.append(f"pledge --budget BCF --partner KCC --amount {gbp(BCF_KCC_REVENUE)}")
    out.append(f"pledge --budget BCF --partner KCC --amount {gbp(BCF_DFG)} --ring-fenced DFG")
    out.append(
        f'allocate-fund --fund SSF --name "System sustainability fund" --year {Y} --recipient KHFT:4800000 --recipient AVT:2400000'
        " --condition FIN:system-finance:70% --condition AE:ae-four-hour>=90%:30%"
    )
    for m in range(1, 13):
        out.extend(month_lines(m, variant_b))
    out.append("# ---- 2019/20: Q4 paid in arrears; the post-close gain share names 2018/19 ----")
    out.append("pay-tranche --fund SSF --quarter 4 --period 2019/20-M1")
    out.append(
        'record-adjustment --contract C6 --period 2019/20-M2 --amount 50000 --corrects 2018/19-M12'
        ' --reason "Gain share for 2018/19 agreed as payable to KNPCN"'
    )
    return "\n".join(out) + "\n"


def check_against_brief():
    """The year-end figures of BRIEF.md section 8, recomputed from what the files post."""
    year_end = {}
    for code, _, _, _, income, expenditure in MEMBERS:
        inc = sum(split(income)[m - 1] + VARIANCES.get((m, code, "inc"), 0) for m in range(1, 13))
        exp = sum(split(expenditure)[m - 1] + VARIANCES.get((m, code, "exp"), 0) for m in range(1, 13))
        year_end[code] = (inc, exp)
    expected = {
        "KCCG": (900_000_000, 901_020_000), "KHFT": (420_120_000, 425_400_000),
        "AVT": (240_600_000, 244_200_000), "KCHT": (96_000_000, 94_500_000),
        "AKMH": (144_000_000, 142_560_000),
    }
    for code, (inc, exp) in expected.items():
        assert year_end[code] == (inc * POUND, exp * POUND), (code, year_end[code])
    nhs = [c for c, _, _, ct, _, _ in MEMBERS if ct]
    assert sum(year_end[c][0] - year_end[c][1] for c in nhs) == -6_960_000 * POUND
    eliminations = {p: 0 for p in ("KHFT", "AVT", "KCHT", "AKMH")}
    for m in range(1, 13):
        for other, b in return_balances("KCCG", m).items():
            if other in eliminations:
                eliminations[other] += b["expenditure"]
    assert eliminations == {"KHFT": 319_920_000 * POUND, "AVT": 204_600_000 * POUND,
                            "KCHT": 84_000_000 * POUND, "AKMH": 126_000_000 * POUND}, eliminations
    assert sum(BCF_REVENUE_SPEND) - (BCF_KCCG + BCF_KCC_REVENUE) == 600_000 * POUND


if __name__ == "__main__":
    check_against_brief()
    here = os.path.dirname(os.path.abspath(__file__))
    for name, variant_b in (("kingsmere-2018-19.ics", False), ("kingsmere-variant-b.ics", True)):
        with open(os.path.join(here, name), "w") as f:
            f.write(scenario(variant_b))
        print(f"wrote {name}")
