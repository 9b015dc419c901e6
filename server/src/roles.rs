//! Who holds which role. The roster says, except for roles mapped to a
//! GitHub org team: those are held by exactly the roster principals who are
//! active members of the team (a roster handle is the GitHub login). Team
//! membership is read through the team memberships API and cached; the
//! cache is refreshed every `refresh` in the background. A membership that
//! cannot be read keeps its last known answer; one never read is "not a
//! member", so an unreachable GitHub grants nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{Directory, Principal, Role};
use crate::integrations::CodeHost;
pub use crate::integrations::github::Team;

pub struct Roles {
    /// The roster's own roles (replaced when the roster is reloaded).
    roster: RwLock<Directory>,
    teams: BTreeMap<Role, Team>,
    /// Last known membership: (handle, role) → member.
    known: RwLock<BTreeMap<(String, Role), bool>>,
    current: RwLock<Arc<Directory>>,
}

impl Roles {
    /// Roles from the roster alone.
    pub fn from_roster(roster: Directory) -> Roles {
        Roles::with_teams(roster, BTreeMap::new())
    }

    pub fn with_teams(roster: Directory, teams: BTreeMap<Role, Team>) -> Roles {
        let r = Roles {
            roster: RwLock::new(roster),
            teams,
            known: RwLock::default(),
            current: RwLock::default(),
        };
        r.rebuild();
        r
    }

    pub fn teams(&self) -> &BTreeMap<Role, Team> {
        &self.teams
    }

    /// Everyone's roles now.
    pub fn directory(&self) -> Arc<Directory> {
        self.current.read().expect("roles lock").clone()
    }

    /// `handle` with the roles it holds now (None: not in the roster).
    pub fn principal(&self, handle: &str) -> Option<Principal> {
        self.directory().get(handle).map(|roles| Principal {
            handle: handle.to_string(),
            roles: roles.clone(),
        })
    }

    /// Replaces the roster (a reload): team roles stay as last read.
    pub fn set_roster(&self, roster: Directory) {
        *self.roster.write().expect("roles lock") = roster;
        self.rebuild();
    }

    fn rebuild(&self) {
        let known = self.known.read().expect("roles lock");
        let roster = self.roster.read().expect("roles lock");
        let dir: Directory = roster
            .iter()
            .map(|(handle, roles)| {
                let mut held: BTreeSet<Role> = roles
                    .iter()
                    .copied()
                    .filter(|r| !self.teams.contains_key(r))
                    .collect();
                for role in self.teams.keys() {
                    if known.get(&(handle.clone(), *role)) == Some(&true) {
                        held.insert(*role);
                    }
                }
                (handle.clone(), held)
            })
            .collect();
        *self.current.write().expect("roles lock") = Arc::new(dir);
    }

    /// Reads every roster principal's membership of every mapped team.
    /// Returns the memberships that could not be read.
    pub async fn refresh(&self, github: &dyn CodeHost) -> Vec<String> {
        let mut failed = Vec::new();
        for (role, (org, team)) in &self.teams {
            let handles: Vec<String> = self
                .roster
                .read()
                .expect("roles lock")
                .keys()
                .cloned()
                .collect();
            for handle in &handles {
                match github.team_member(org, team, handle).await {
                    Ok(member) => {
                        self.known
                            .write()
                            .expect("roles lock")
                            .insert((handle.clone(), *role), member);
                    }
                    Err(e) => failed.push(format!("{handle} in {org}/{team}: {e}")),
                }
            }
        }
        self.rebuild();
        failed
    }
}

/// Refreshes team roles every `every` until shutdown.
pub async fn run_refresher(
    roles: Arc<Roles>,
    github: Arc<dyn CodeHost>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        for f in roles.refresh(github.as_ref()).await {
            tracing::warn!(membership = %f, "team membership not refreshed; keeping the last answer");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_role_is_held_only_by_known_team_members() {
        let roster: Directory = [
            ("carol".to_string(), BTreeSet::from([Role::PlatformAdmin])),
            ("dave".to_string(), BTreeSet::from([Role::PlatformTeam])),
        ]
        .into();
        let teams = BTreeMap::from([(
            Role::PlatformAdmin,
            ("bookstore".to_string(), "platform-admins".to_string()),
        )]);
        let roles = Roles::with_teams(roster, teams);
        // Not read yet: the roster's claim of a mapped role grants nothing.
        assert!(roles.principal("carol").unwrap().roles.is_empty());
        roles
            .known
            .write()
            .unwrap()
            .insert(("dave".into(), Role::PlatformAdmin), true);
        roles.rebuild();
        assert_eq!(
            roles.principal("dave").unwrap().roles,
            BTreeSet::from([Role::PlatformTeam, Role::PlatformAdmin])
        );
        assert!(roles.principal("mallory").is_none());
    }
}
