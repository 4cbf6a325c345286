//! The message table: VPP-style message ids, `name_crc` strings and dynamic decode.

use crate::defs::MODULES;
use crate::schema::{DynMessage, Kind, Message, ModuleDef, MsgDef, ServiceDef};
use crate::wire::{DecodeError, Reader, Wire};
use std::collections::HashMap;
use std::sync::OnceLock;

/// memclnt messages have fixed ids 1..=28; other modules start here.
pub const FIRST_DYNAMIC_MSG_ID: u16 = 29;

/// One registered message.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u16,
    pub def: &'static MsgDef,
    /// CRC computed from the Rust definition.
    pub crc: u32,
    /// `"<name>_<crc 8 hex>"`.
    pub name_crc: String,
}

impl Entry {
    pub fn name(&self) -> &'static str {
        self.def.name
    }
    pub fn module(&self) -> &'static str {
        self.def.module
    }
    pub fn kind(&self) -> Kind {
        self.def.kind
    }
}

/// A module's block of message ids.
#[derive(Debug, Clone)]
pub struct ModuleBlock {
    pub module: &'static ModuleDef,
    /// First id of the block (VPP's `get_first_msg_id`).
    pub base: u16,
    pub count: u16,
}

/// All registered messages.
#[derive(Debug)]
pub struct Registry {
    entries: Vec<Entry>,
    by_name_crc: HashMap<String, u16>,
    by_name: HashMap<&'static str, u16>,
    modules: Vec<ModuleBlock>,
    services: HashMap<&'static str, &'static ServiceDef>,
}

impl Registry {
    /// The registry of every carried module, built once.
    pub fn global() -> &'static Registry {
        static R: OnceLock<Registry> = OnceLock::new();
        R.get_or_init(|| Registry::build(MODULES))
    }

    /// Assign ids as VPP does: `memclnt` gets 1..=n in define order; every other module
    /// gets a contiguous block, in the given (registration) order, starting at 29.
    pub fn build(modules: &[&'static ModuleDef]) -> Registry {
        let mut entries = Vec::new();
        let mut blocks = Vec::new();
        let mut next: u16 = 1;
        let mut ordered: Vec<&'static ModuleDef> = modules
            .iter()
            .copied()
            .filter(|m| m.name == "memclnt")
            .collect();
        ordered.extend(modules.iter().copied().filter(|m| m.name != "memclnt"));
        for m in ordered {
            if m.name != "memclnt" && next < FIRST_DYNAMIC_MSG_ID {
                next = FIRST_DYNAMIC_MSG_ID;
            }
            if m.messages.is_empty() {
                continue;
            }
            let base = next;
            for def in m.messages {
                let crc = def.compute_crc();
                entries.push(Entry {
                    id: next,
                    def,
                    crc,
                    name_crc: format!("{}_{:08x}", def.name, crc),
                });
                next += 1;
            }
            blocks.push(ModuleBlock {
                module: m,
                base,
                count: next - base,
            });
        }
        let by_name_crc = entries.iter().map(|e| (e.name_crc.clone(), e.id)).collect();
        let by_name = entries.iter().map(|e| (e.def.name, e.id)).collect();
        let services = blocks
            .iter()
            .flat_map(|b| b.module.services.iter())
            .map(|s| (s.caller, s))
            .collect();
        Registry {
            entries,
            by_name_crc,
            by_name,
            modules: blocks,
            services,
        }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
    pub fn modules(&self) -> &[ModuleBlock] {
        &self.modules
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn by_id(&self, id: u16) -> Option<&Entry> {
        let e = self.entries.get((id as usize).checked_sub(1)?)?;
        (e.id == id).then_some(e)
    }
    pub fn by_name_crc(&self, name_crc: &str) -> Option<&Entry> {
        self.by_name_crc
            .get(name_crc)
            .and_then(|&id| self.by_id(id))
    }
    pub fn by_name(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).and_then(|&id| self.by_id(id))
    }
    /// The service (reply / stream / events) of a request message.
    pub fn service(&self, caller: &str) -> Option<&'static ServiceDef> {
        self.services.get(caller).copied()
    }
    /// The id of message type `M`.
    pub fn id_of<M: Message>(&self) -> u16 {
        self.by_name.get(M::NAME).copied().unwrap_or(0)
    }
    /// VPP's `get_first_msg_id`: `"<module>_<vl_api_version 8 hex>"` -> base id.
    pub fn first_msg_id(&self, module_crc: &str) -> Option<u16> {
        self.modules
            .iter()
            .find(|b| format!("{}_{:08x}", b.module.name, b.module.vl_api_version) == module_crc)
            .map(|b| b.base)
    }
    /// `(id, name_crc)` for every message: the table sent in `sockclnt_create_reply`.
    pub fn message_table(&self) -> impl Iterator<Item = (u16, &str)> {
        self.entries.iter().map(|e| (e.id, e.name_crc.as_str()))
    }
    /// The message id at the start of a payload.
    pub fn peek_id(payload: &[u8]) -> Result<u16, DecodeError> {
        u16::decode(&mut Reader::new(payload))
    }
    /// Decode any registered message from a payload (id first).
    pub fn decode(&self, payload: &[u8]) -> Result<(u16, Box<dyn DynMessage>), DecodeError> {
        let id = Self::peek_id(payload)?;
        let e = self.by_id(id).ok_or(DecodeError::UnknownId(id))?;
        Ok((id, (e.def.decode)(payload)?))
    }
    /// Encode a message with its registered id.
    pub fn encode<M: Message>(&self, m: &M) -> Vec<u8> {
        m.encode_msg(self.id_of::<M>())
    }
    /// Encode a dynamic message with its registered id.
    pub fn encode_dyn(&self, m: &dyn DynMessage) -> Vec<u8> {
        let id = self.by_name(m.def().name).map(|e| e.id).unwrap_or(0);
        m.encode_msg(id)
    }
}
