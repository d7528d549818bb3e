//! A minimal reader of the demo's scenario files (`deploy/demo/*.ics`), for tests: each line
//! is an `icsctl` subcommand; this turns the ones the demo uses into `domain::Command`s the
//! same way `icsctl` does, so the tests fold exactly what the demo posts. (The domain must not
//! depend on icsctl; icsctl's own tests check that it parses the same files.)

use std::collections::BTreeMap;

use crate::budget::{BudgetCommand, Scheme, Share};
use crate::contract::{ContractCommand, PaymentModel};
use crate::fund::{Condition, ConditionKind, Evidence, Figures, FundCommand, Recipient};
use crate::system::{CounterpartyBalance, Metric, MonthlyReturn, SystemCommand};
use crate::{
    BasisPoints, Code, Command, FinancialYear, MemberCode, MemberKind, Pence, Period, Quarter,
    SystemId, Text,
};

pub const KINGSMERE: &str = include_str!("../../../../../deploy/demo/kingsmere-2018-19.ics");
pub const VARIANT_B: &str = include_str!("../../../../../deploy/demo/kingsmere-variant-b.ics");

/// Flags that take no value.
const SWITCHES: [&str; 1] = ["in-control-total"];

/// Every command of a scenario, with its line number.
pub fn parse(text: &str) -> Vec<(usize, Command)> {
    let mut commands = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let command = parse_line(line).unwrap_or_else(|e| panic!("line {}: {e}", index + 1));
        commands.push((index + 1, command));
    }
    commands
}

fn words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err("unbalanced quotes".into());
    }
    if any {
        words.push(word);
    }
    Ok(words)
}

struct Flags(BTreeMap<String, Vec<String>>);

impl Flags {
    fn one(&self, name: &str) -> Result<&str, String> {
        match self.0.get(name).map(Vec::as_slice) {
            Some([value]) => Ok(value),
            _ => Err(format!("--{name} is needed once")),
        }
    }
    fn maybe(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.first()).map(String::as_str)
    }
    fn many(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }
    fn switch(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

fn pounds(text: &str) -> Result<Pence, String> {
    Pence::parse_pounds(text).map_err(|e| e.to_string())
}

fn percent(text: &str) -> Result<BasisPoints, String> {
    let number = text
        .strip_suffix('%')
        .ok_or(format!("'{text}' is not N%"))?;
    let bp = Pence::parse_pounds(number)
        .map_err(|e| e.to_string())?
        .get();
    u32::try_from(bp)
        .map(BasisPoints::new)
        .map_err(|e| e.to_string())
}

fn member(text: &str) -> Result<MemberCode, String> {
    MemberCode::parse(text).map_err(|e| e.to_string())
}

fn code(text: &str) -> Result<Code, String> {
    Code::new(text).map_err(|e| e.to_string())
}

fn text(text: &str) -> Result<Text, String> {
    Text::new(text).map_err(|e| e.to_string())
}

fn period(text: &str) -> Result<Period, String> {
    text.parse().map_err(|e: crate::PeriodError| e.to_string())
}

fn year(text: &str) -> Result<FinancialYear, String> {
    text.parse().map_err(|e: crate::PeriodError| e.to_string())
}

fn count(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("'{text}' is not a count"))
}

fn key_values(text: &str) -> Result<BTreeMap<&str, &str>, String> {
    text.split(',')
        .map(|pair| pair.split_once('=').ok_or(format!("'{pair}' is not k=v")))
        .collect()
}

fn get<'a>(kv: &BTreeMap<&str, &'a str>, key: &str) -> Result<&'a str, String> {
    kv.get(key).copied().ok_or(format!("{key}= is missing"))
}

fn model(flags: &Flags) -> Result<PaymentModel, String> {
    if let Some(value) = flags.maybe("block") {
        return Ok(PaymentModel::Block {
            annual_value: pounds(value)?,
        });
    }
    if let Some(kv) = flags.maybe("activity-tariff") {
        let kv = key_values(kv)?;
        return Ok(PaymentModel::ActivityTariff {
            planned_units: count(get(&kv, "units")?)?,
            unit_price: pounds(get(&kv, "price")?)?,
        });
    }
    if let Some(kv) = flags.maybe("aligned") {
        let kv = key_values(kv)?;
        return Ok(PaymentModel::AlignedPayment {
            fixed: pounds(get(&kv, "fixed")?)?,
            planned_units: count(get(&kv, "units")?)?,
            unit_price: pounds(get(&kv, "price")?)?,
            marginal_rate: percent(get(&kv, "rate")?)?,
        });
    }
    if let Some(kv) = flags.maybe("capitation") {
        let kv = key_values(kv)?;
        return Ok(PaymentModel::Capitation {
            per_head: pounds(get(&kv, "per-head")?)?,
            population: count(get(&kv, "population")?)?,
            gain_share: percent(get(&kv, "gain-share")?)?,
            loss_share: percent(get(&kv, "loss-share")?)?,
        });
    }
    if let Some(kv) = flags.maybe("cquin") {
        let kv = key_values(kv)?;
        return Ok(PaymentModel::Cquin {
            base_value: pounds(get(&kv, "base")?)?,
            rate: percent(get(&kv, "rate")?)?,
        });
    }
    Err("no payment model".into())
}

fn share(text: &str) -> Result<Share, String> {
    let (m, p) = text.split_once(':').ok_or("MEMBER:PERCENT")?;
    Ok(Share {
        member: member(m)?,
        share: percent(p)?,
    })
}

fn parse_line(line: &str) -> Result<Command, String> {
    let words = words(line)?;
    let (name, rest) = words.split_first().ok_or("empty line")?;
    let mut flags = BTreeMap::<String, Vec<String>>::new();
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let flag = flag
            .strip_prefix("--")
            .ok_or(format!("'{flag}' is not a flag"))?;
        let value = if SWITCHES.contains(&flag) {
            String::new()
        } else {
            rest.next()
                .ok_or(format!("--{flag} needs a value"))?
                .clone()
        };
        flags.entry(flag.to_string()).or_default().push(value);
    }
    let f = Flags(flags);
    let budget = |command| -> Result<Command, String> {
        Ok(Command::Budget {
            budget: code(f.one("budget")?)?,
            command,
        })
    };
    let fund = |command| -> Result<Command, String> {
        Ok(Command::Fund {
            fund: code(f.one("fund")?)?,
            command,
        })
    };
    let contract = |command| -> Result<Command, String> {
        Ok(Command::Contract {
            contract: code(f.one("contract")?)?,
            command,
        })
    };
    let corrects = || f.maybe("corrects").map(period).transpose();
    let quarter = || -> Result<Quarter, String> {
        Quarter::new(count(f.one("quarter")?)? as u32).map_err(|e| e.to_string())
    };
    match name.as_str() {
        "establish-system" => Ok(Command::System(SystemCommand::Establish {
            system: SystemId::new(f.one("system")?).map_err(|e| e.to_string())?,
            name: text(f.one("name")?)?,
            first_year: year(f.one("first-year")?)?,
        })),
        "admit-member" => Ok(Command::System(SystemCommand::AdmitMember {
            member: member(f.one("member")?)?,
            name: text(f.one("name")?)?,
            kind: MemberKind::from_name(f.one("kind")?).ok_or("unknown kind")?,
            in_control_total: f.switch("in-control-total"),
        })),
        "agree-plan" => Ok(Command::System(SystemCommand::AgreePlan {
            member: member(f.one("member")?)?,
            year: year(f.one("year")?)?,
            income: pounds(f.one("income")?)?,
            expenditure: pounds(f.one("expenditure")?)?,
        })),
        "submit-return" => {
            let mut balances = Vec::new();
            for b in f.many("balance") {
                let (m, kv) = b.split_once(':').ok_or("MEMBER:k=v,…")?;
                let kv = key_values(kv)?;
                let amount = |k| kv.get(k).map_or(Ok(Pence::ZERO), |v| pounds(v));
                balances.push(CounterpartyBalance {
                    counterparty: member(m)?,
                    income: amount("income")?,
                    expenditure: amount("expenditure")?,
                    receivables: amount("receivables")?,
                    payables: amount("payables")?,
                });
            }
            Ok(Command::System(SystemCommand::SubmitReturn(
                MonthlyReturn {
                    member: member(f.one("member")?)?,
                    period: period(f.one("period")?)?,
                    income: pounds(f.one("income")?)?,
                    expenditure: pounds(f.one("expenditure")?)?,
                    balances,
                },
            )))
        }
        "report-metric" => Ok(Command::System(SystemCommand::ReportMetric {
            member: member(f.one("member")?)?,
            period: period(f.one("period")?)?,
            metric: Metric::from_name(f.one("metric")?).ok_or("unknown metric")?,
            value: i64::from(percent(f.one("value")?)?.get()),
        })),
        "close-period" => Ok(Command::System(SystemCommand::ClosePeriod {
            period: period(f.one("period")?)?,
        })),
        "establish-budget" => {
            let mut schemes = Vec::new();
            for s in f.many("scheme") {
                let mut parts = s.splitn(3, ':');
                schemes.push(Scheme {
                    scheme: code(parts.next().unwrap_or_default())?,
                    name: text(parts.next().ok_or("CODE:Name")?)?,
                    ring_fenced: parts.next() == Some("ring-fenced"),
                });
            }
            budget(BudgetCommand::Establish {
                name: text(f.one("name")?)?,
                host: member(f.one("host")?)?,
                year: year(f.one("year")?)?,
                partners: f
                    .many("partner")
                    .iter()
                    .map(|m| member(m))
                    .collect::<Result<_, _>>()?,
                schemes,
                overspend_shares: f
                    .many("overspend-share")
                    .iter()
                    .map(|s| share(s))
                    .collect::<Result<_, _>>()?,
                underspend_shares: f
                    .many("underspend-share")
                    .iter()
                    .map(|s| share(s))
                    .collect::<Result<_, _>>()?,
            })
        }
        "pledge" => budget(BudgetCommand::Pledge {
            partner: member(f.one("partner")?)?,
            amount: pounds(f.one("amount")?)?,
            ring_fenced_scheme: f.maybe("ring-fenced").map(code).transpose()?,
        }),
        "pay-contribution" => budget(BudgetCommand::PayContribution {
            partner: member(f.one("partner")?)?,
            period: period(f.one("period")?)?,
            amount: pounds(f.one("amount")?)?,
        }),
        "record-spend" => budget(BudgetCommand::RecordSpend {
            scheme: code(f.one("scheme")?)?,
            period: period(f.one("period")?)?,
            amount: pounds(f.one("amount")?)?,
            corrects: corrects()?,
        }),
        "settle-risk-share" => budget(BudgetCommand::SettleRiskShare {
            period: period(f.one("period")?)?,
        }),
        "close-budget" => budget(BudgetCommand::Close {
            period: period(f.one("period")?)?,
        }),
        "allocate-fund" => {
            let mut recipients = Vec::new();
            for r in f.many("recipient") {
                let (m, a) = r.split_once(':').ok_or("MEMBER:AMOUNT")?;
                recipients.push(Recipient {
                    member: member(m)?,
                    allocation: pounds(a)?,
                });
            }
            let mut conditions = Vec::new();
            for c in f.many("condition") {
                let parts: Vec<&str> = c.split(':').collect();
                let [c, kind, weight] = parts.as_slice() else {
                    return Err(format!("'{c}' is not CODE:KIND:WEIGHT"));
                };
                let kind = match kind.strip_prefix("ae-four-hour>=") {
                    Some(threshold) => ConditionKind::AeFourHour {
                        threshold: percent(threshold)?,
                    },
                    None if *kind == "system-finance" => ConditionKind::SystemFinance,
                    None => return Err(format!("unknown condition {kind}")),
                };
                conditions.push(Condition {
                    condition: code(c)?,
                    kind,
                    weight: percent(weight)?,
                });
            }
            fund(FundCommand::Allocate {
                name: text(f.one("name")?)?,
                year: year(f.one("year")?)?,
                recipients,
                conditions,
            })
        }
        "assess-tranche" => {
            let mut evidence = Vec::new();
            for e in f.many("evidence") {
                let (c, kv) = e.split_once(':').ok_or("CODE:k=v")?;
                let kv = key_values(kv)?;
                let figures = match kv.get("performance") {
                    Some(p) => Figures::AeFourHour {
                        performance: percent(p)?,
                    },
                    None => Figures::SystemFinance {
                        actual_ytd: pounds(get(&kv, "actual")?)?,
                        control_total_ytd: pounds(get(&kv, "control-total")?)?,
                    },
                };
                evidence.push(Evidence {
                    condition: code(c)?,
                    figures,
                });
            }
            fund(FundCommand::AssessTranche {
                quarter: quarter()?,
                evidence,
            })
        }
        "pay-tranche" => fund(FundCommand::PayTranche {
            quarter: quarter()?,
            period: period(f.one("period")?)?,
        }),
        "agree-contract" => contract(ContractCommand::Agree {
            commissioner: member(f.one("commissioner")?)?,
            provider: member(f.one("provider")?)?,
            year: year(f.one("year")?)?,
            model: model(&f)?,
            description: text(f.one("description")?)?,
        }),
        "record-activity" => contract(ContractCommand::RecordActivity {
            period: period(f.one("period")?)?,
            units: count(f.one("units")?)?,
            corrects: corrects()?,
        }),
        "raise-invoice" => contract(ContractCommand::RaiseInvoice {
            invoice: code(f.one("invoice")?)?,
            period: period(f.one("period")?)?,
            amount: pounds(f.one("amount")?)?,
            corrects: corrects()?,
        }),
        "record-payment" => contract(ContractCommand::RecordPayment {
            invoice: code(f.one("invoice")?)?,
            period: period(f.one("period")?)?,
            amount: pounds(f.one("amount")?)?,
        }),
        "reconcile-cquin" => contract(ContractCommand::ReconcileCquin {
            period: period(f.one("period")?)?,
            achievement: percent(f.one("achievement")?)?,
        }),
        "record-adjustment" => contract(ContractCommand::RecordAdjustment {
            period: period(f.one("period")?)?,
            amount: pounds(f.one("amount")?)?,
            reason: text(f.one("reason")?)?,
            corrects: corrects()?,
        }),
        other => Err(format!("'{other}' is not a command the demo uses")),
    }
}
