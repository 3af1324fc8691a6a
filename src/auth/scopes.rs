//! The gateway's OAuth scopes and the set a caller holds.
//!
//! Scopes arrive as the space-delimited `scope` claim (RFC 8693 §4.2, the same
//! syntax as RFC 6749 §3.3). Some identity providers (Okta, Azure AD) send `scp`
//! instead, as an array or a string; the verifier accepts both. Scopes this
//! gateway does not know are ignored rather than rejected, so a token minted for
//! several audiences still works here.

use std::fmt;

/// One permission the gateway understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `intercom:read`: call read-only Intercom tools.
    IntercomRead,
    /// `intercom:write`: call tools that change Intercom data.
    IntercomWrite,
    /// `gateway:admin`: administer every tenant (grants no tool calls).
    GatewayAdmin,
}

impl Scope {
    const ALL: [Scope; 3] = [
        Scope::IntercomRead,
        Scope::IntercomWrite,
        Scope::GatewayAdmin,
    ];

    /// The scope's name as written in tokens.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::IntercomRead => "intercom:read",
            Scope::IntercomWrite => "intercom:write",
            Scope::GatewayAdmin => "gateway:admin",
        }
    }

    /// The scope named `s`, or `None` for a scope this gateway does not use.
    /// Scope names are case-sensitive (RFC 6749 §3.3).
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    const fn bit(self) -> u8 {
        match self {
            Scope::IntercomRead => 1,
            Scope::IntercomWrite => 1 << 1,
            Scope::GatewayAdmin => 1 << 2,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The set of scopes a caller holds. A bit set: `Copy`, and checking it on every
/// request costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// No scopes.
    pub const NONE: Scopes = Scopes(0);
    /// Only `intercom:read`.
    pub const READ: Scopes = Scopes(Scope::IntercomRead.bit());
    /// Only `intercom:write`.
    pub const WRITE: Scopes = Scopes(Scope::IntercomWrite.bit());
    /// Only `gateway:admin`.
    pub const ADMIN: Scopes = Scopes(Scope::GatewayAdmin.bit());

    /// Parses a space-delimited scope string; unknown scopes are ignored.
    pub fn parse(s: &str) -> Scopes {
        Scopes::from_names(s.split_ascii_whitespace())
    }

    /// Collects already split scope names (the array form of `scp`).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Scopes {
        names
            .into_iter()
            .filter_map(Scope::parse)
            .fold(Scopes::NONE, Scopes::with)
    }

    /// Whether the set holds `scope`.
    pub const fn contains(&self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// This set plus `scope`.
    #[must_use]
    pub const fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | scope.bit())
    }

    /// Every scope in either set.
    #[must_use]
    pub const fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The scopes in the set, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        Scope::ALL.into_iter().filter(|s| self.contains(*s))
    }
}

/// Space-delimited, the same shape as the `scope` claim: handy in logs and in
/// `mint-token` output.
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_separated_scopes_are_parsed_and_unknown_ones_ignored() {
        let scopes = Scopes::parse("  openid intercom:read\tgateway:admin profile ");
        assert!(scopes.contains(Scope::IntercomRead));
        assert!(scopes.contains(Scope::GatewayAdmin));
        assert!(!scopes.contains(Scope::IntercomWrite));
        assert_eq!(scopes, Scopes::READ.union(Scopes::ADMIN));
    }

    #[test]
    fn scope_names_are_case_sensitive() {
        assert_eq!(Scopes::parse("Intercom:Read INTERCOM:WRITE"), Scopes::NONE);
    }

    #[test]
    fn an_empty_scope_string_grants_nothing() {
        assert!(Scopes::parse("").is_empty());
        assert_eq!(Scopes::default(), Scopes::NONE);
    }

    #[test]
    fn display_round_trips_through_parse() {
        let all = Scopes::READ.union(Scopes::WRITE).union(Scopes::ADMIN);
        assert_eq!(
            all.to_string(),
            "intercom:read intercom:write gateway:admin"
        );
        assert_eq!(Scopes::parse(&all.to_string()), all);
    }

    #[test]
    fn array_form_is_collected() {
        let scopes = Scopes::from_names(["intercom:write", "x"]);
        assert_eq!(scopes, Scopes::WRITE);
    }
}
