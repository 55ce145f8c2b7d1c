//! Outbound slots shared fairly between tenants (accounts).
//!
//! Guarantees:
//! - A pool of `total` slots; one tenant holds at most a tenth of them (at least one), so a
//!   tenant whose targets hang fills only its own share and the others still get slots.
//! - A [`Slot`] is given back when dropped, also when the future waiting for it is dropped.
//! - Waiting is first come, first served within a tenant and for the pool.
//! - Memory is bounded by the tenants holding or waiting for a slot: a tenant's entry goes
//!   with its last slot.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Semaphore;

/// A pool of slots with a per-tenant share.
pub struct Slots {
    all: Semaphore,
    share: usize,
    tenants: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
}

/// One slot, held until dropped.
pub struct Slot {
    slots: Arc<Slots>,
    tenant: Arc<str>,
    /// Taken out under the map's lock when dropped (so the count of its users is exact).
    own: Option<Arc<Semaphore>>,
    held_own: bool,
    held_all: bool,
}

impl Slots {
    /// `total` slots (at least one), a tenth of them (at least one) per tenant.
    pub fn new(total: usize) -> Arc<Slots> {
        let total = total.max(1);
        Arc::new(Slots {
            all: Semaphore::new(total),
            share: (total / 10).max(1),
            tenants: Mutex::new(HashMap::new()),
        })
    }

    /// The most slots one tenant may hold.
    pub fn share(&self) -> usize {
        self.share
    }

    /// Slots free in the whole pool.
    pub fn available(&self) -> usize {
        self.all.available_permits()
    }

    fn slot(self: &Arc<Self>, tenant: &str) -> Slot {
        let mut map = self.tenants.lock();
        let (tenant, own) = match map.get_key_value(tenant) {
            Some((k, v)) => (k.clone(), v.clone()),
            None => {
                let k: Arc<str> = tenant.into();
                let v = Arc::new(Semaphore::new(self.share));
                map.insert(k.clone(), v.clone());
                (k, v)
            }
        };
        Slot {
            slots: self.clone(),
            tenant,
            own: Some(own),
            held_own: false,
            held_all: false,
        }
    }

    /// A slot now, if the tenant's share and the pool both have one.
    pub fn try_take(self: &Arc<Self>, tenant: &str) -> Option<Slot> {
        let mut slot = self.slot(tenant);
        slot.own.as_ref()?.try_acquire().ok()?.forget();
        slot.held_own = true;
        self.all.try_acquire().ok()?.forget();
        slot.held_all = true;
        Some(slot)
    }

    /// A slot, waiting first for the tenant's share and then for the pool.
    pub async fn take(self: &Arc<Self>, tenant: &str) -> Slot {
        let mut slot = self.slot(tenant);
        let own = slot.own.as_ref().expect("set until dropped");
        own.acquire().await.expect("never closed").forget();
        slot.held_own = true;
        self.all.acquire().await.expect("never closed").forget();
        slot.held_all = true;
        slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.held_all {
            self.slots.all.add_permits(1);
        }
        let mut map = self.slots.tenants.lock();
        let Some(own) = self.own.take() else {
            return;
        };
        if self.held_own {
            own.add_permits(1);
        }
        // Every clone of a tenant's semaphore is made and dropped under this lock: the map's
        // and this one left means no one else holds or waits for the tenant's share.
        if Arc::strong_count(&own) == 2
            && map.get(&self.tenant).is_some_and(|s| Arc::ptr_eq(s, &own))
        {
            map.remove(&self.tenant);
        }
        drop(own);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_tenant_holds_at_most_a_tenth_and_the_others_still_get_slots() {
        let slots = Slots::new(50);
        assert_eq!(slots.share(), 5);
        let mut a: Vec<Slot> = std::iter::from_fn(|| slots.try_take("a"))
            .take(100)
            .collect();
        assert_eq!(a.len(), 5, "tenant a's share");
        let b: Vec<Slot> = std::iter::from_fn(|| slots.try_take("b"))
            .take(100)
            .collect();
        assert_eq!(b.len(), 5, "tenant b is not starved by a");
        assert_eq!(slots.available(), 40);
        a.pop();
        assert!(
            slots.try_take("a").is_some(),
            "a slot given back is a's again"
        );
        drop((a, b));
        assert_eq!(slots.available(), 50);
        assert!(
            slots.tenants.lock().is_empty(),
            "no tenant entry outlives its slots"
        );
    }

    #[test]
    fn a_small_pool_still_gives_each_tenant_one_slot() {
        let slots = Slots::new(3);
        assert_eq!(slots.share(), 1);
        let a = slots.try_take("a").unwrap();
        assert!(slots.try_take("a").is_none());
        let _b = slots.try_take("b").unwrap();
        drop(a);
        assert!(slots.try_take("a").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_tenant_gets_its_slot_when_one_of_its_own_is_given_back() {
        let slots = Slots::new(10);
        let held = slots.take("a").await;
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take("a").await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished(), "a's share of one is taken");
        let other = tokio::time::timeout(Duration::from_millis(1), slots.take("b")).await;
        assert!(other.is_ok(), "b does not wait behind a");
        drop(held);
        let slot = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("given a's slot")
            .unwrap();
        drop((slot, other));
        assert!(slots.tenants.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_given_up_leaves_nothing_behind() {
        let slots = Slots::new(10);
        let held = slots.take("a").await;
        let gave_up = tokio::time::timeout(Duration::from_secs(1), slots.take("a")).await;
        assert!(gave_up.is_err());
        drop(held);
        assert_eq!(slots.available(), 10);
        assert!(slots.tenants.lock().is_empty());
    }
}
