//! Facts from the engine: what the command string cannot tell. An image reference resolves in
//! the engine by name, by full or short ID, by digest and by whatever local tag exists; a named
//! volume that already exists may carry driver options that make it a bind of a host path. The
//! edge asks the engine (as the agent's account, bounded) and hands the answers to `decide` as
//! plain data, so `decide` stays pure.
//!
//! The flow: `decide` on `Facts::Offline` says which facts the command needs (`Needs`); the
//! edge gathers those into `Facts::Engine` and decides again. Offline (explain without an
//! engine, a rule's examples) the decision rests on the string alone and says what it lacked.

use std::collections::BTreeMap;

/// What the engine knows about one thing asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    /// The engine has no such image or volume.
    Absent,
    /// The engine could not be asked, or answered something that could not be read.
    Failed(String),
}

/// An image as the engine holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `sha256:` and 64 hex digits: what the plan runs, so a tag moved later changes nothing.
    pub id: String,
    /// Its repository tags and digests (`alpine:3.20`, `alpine@sha256:...`).
    pub names: Vec<String>,
}

/// A named volume as the engine holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub driver: String,
    /// The driver options it was created with (`type`, `o`, `device` for the local driver).
    pub options: BTreeMap<String, String>,
}

/// The engine's answers, keyed by the reference or name exactly as the command wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Engine {
    pub images: BTreeMap<String, Lookup<Image>>,
    pub volumes: BTreeMap<String, Lookup<Volume>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Facts {
    /// No engine was asked: decide on the string alone.
    #[default]
    Offline,
    Engine(Engine),
}

/// What a docker command needs the engine to say before it can be decided for real.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    pub images: Vec<String>,
    pub volumes: Vec<String>,
}

impl Needs {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty() && self.volumes.is_empty()
    }
}

impl Engine {
    /// Why the engine could not answer one of the questions, if it could not.
    pub fn first_failure(&self) -> Option<&str> {
        let images = self.images.values().filter_map(Lookup::failure);
        let volumes = self.volumes.values().filter_map(Lookup::failure);
        images.chain(volumes).next()
    }
}

impl<T> Lookup<T> {
    fn failure(&self) -> Option<&str> {
        match self {
            Lookup::Failed(why) => Some(why),
            _ => None,
        }
    }
}

impl Facts {
    pub fn image(&self, reference: &str) -> Option<&Lookup<Image>> {
        match self {
            Facts::Offline => None,
            Facts::Engine(e) => e.images.get(reference),
        }
    }

    pub fn volume(&self, name: &str) -> Option<&Lookup<Volume>> {
        match self {
            Facts::Offline => None,
            Facts::Engine(e) => e.volumes.get(name),
        }
    }

    pub fn is_offline(&self) -> bool {
        *self == Facts::Offline
    }
}
