//! The one error type of the domain. Each variant maps to one gRPC status in the api crate,
//! and each names what was wrong so a finance team can fix the command.

/// Why a command was refused. Refusing a command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Malformed or out-of-range input, whatever the ledger holds (`INVALID_ARGUMENT`).
    /// `field` is the command's field name as it appears in the proto (`amount_pence`,
    /// `balances[2].counterparty`).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A business rule given the current state: a closed period, a terminated contract, an
    /// unadmitted member (`FAILED_PRECONDITION`).
    #[error("{rule}: {detail}")]
    Rejected { rule: Rule, detail: String },
    /// The command names an aggregate that does not exist (`NOT_FOUND`).
    #[error("{what} '{id}' does not exist")]
    NotFound { what: &'static str, id: String },
    /// The command creates something that already exists (`ALREADY_EXISTS`).
    #[error("{what} '{id}' already exists")]
    AlreadyExists { what: &'static str, id: String },
    /// Arithmetic on the command's amounts would overflow (`INVALID_ARGUMENT`).
    #[error("{field}: amounts overflow the range of pence")]
    Overflow { field: String },
}

/// The business rules a command can break, named so clients can branch on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    SystemNotEstablished,
    MemberNotAdmitted,
    NotACommissioner,
    NotAProvider,
    NotInControlTotal,
    PeriodClosed,
    PeriodOutsideYear,
    PeriodsCloseInOrder,
    SharesMustSumToWhole,
    PlanFrozen,
    NotAPartner,
    BudgetSettled,
    BudgetClosed,
    OverPaid,
    TranchesInOrder,
    TrancheNotAssessed,
    TrancheAlreadyPaid,
    ContractTerminated,
    WrongPaymentModel,
    DisputeResolved,
    EvidenceMismatch,
    /// A total would go over one of the ledger's limits (see [`crate::limits`]): the detail
    /// names the field and the limit.
    LimitReached,
}

impl Rule {
    pub const fn name(self) -> &'static str {
        match self {
            Rule::SystemNotEstablished => "system not established",
            Rule::MemberNotAdmitted => "member not admitted",
            Rule::NotACommissioner => "not a commissioner",
            Rule::NotAProvider => "not a provider",
            Rule::NotInControlTotal => "not in the control total",
            Rule::PeriodClosed => "period closed",
            Rule::PeriodOutsideYear => "period outside the year",
            Rule::PeriodsCloseInOrder => "periods close in order",
            Rule::SharesMustSumToWhole => "shares must sum to 100%",
            Rule::PlanFrozen => "plan frozen",
            Rule::NotAPartner => "not a partner",
            Rule::BudgetSettled => "budget settled",
            Rule::BudgetClosed => "budget closed",
            Rule::OverPaid => "over paid",
            Rule::TranchesInOrder => "tranches assessed in order",
            Rule::TrancheNotAssessed => "tranche not assessed",
            Rule::TrancheAlreadyPaid => "tranche already paid",
            Rule::ContractTerminated => "contract terminated",
            Rule::WrongPaymentModel => "wrong payment model",
            Rule::DisputeResolved => "dispute resolved",
            Rule::EvidenceMismatch => "evidence does not match the conditions",
            Rule::LimitReached => "limit reached",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn rejected(rule: Rule, detail: impl Into<String>) -> Self {
        DomainError::Rejected {
            rule,
            detail: detail.into(),
        }
    }

    pub fn overflow(field: impl Into<String>) -> Self {
        DomainError::Overflow {
            field: field.into(),
        }
    }
}
