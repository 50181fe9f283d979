use std::{fmt, sync::Arc, time::Duration};

use sdk_registry::{RegistryBackend, RegistryError, ServiceInstance};

/// This process's registration in the registry: heartbeats run in the background until it is
/// dropped or [`deregister`](Self::deregister)ed, which removes the instance.
#[must_use = "dropping the registration deregisters the instance"]
pub struct Registration {
    registry: Arc<dyn RegistryBackend>,
    instance: ServiceInstance,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Registration {
    pub(super) async fn start(
        registry: Arc<dyn RegistryBackend>,
        instance: ServiceInstance,
        interval: Duration,
    ) -> Result<Self, RegistryError> {
        registry.register(instance.clone()).await?;
        let heartbeat = {
            let (registry, instance) = (registry.clone(), instance.clone());
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.tick().await; // the registration itself was the first beat
                loop {
                    ticks.tick().await;
                    let beat = registry.heartbeat(&instance.service, &instance.id).await;
                    if let Err(e) = beat {
                        // Evicted (or the registry restarted without it): register again.
                        tracing::warn!(service = %instance.service, id = %instance.id, error = %e, "heartbeat refused; registering again");
                        if let Err(e) = registry.register(instance.clone()).await {
                            tracing::warn!(service = %instance.service, error = %e, "re-registration failed");
                        }
                    }
                }
            })
        };
        Ok(Registration {
            registry,
            instance,
            heartbeat: Some(heartbeat),
        })
    }

    /// The registered instance.
    pub fn instance(&self) -> &ServiceInstance {
        &self.instance
    }

    /// Stops heartbeating and removes the instance from the registry.
    pub async fn deregister(mut self) -> Result<(), RegistryError> {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        self.registry
            .deregister(&self.instance.service, &self.instance.id)
            .await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(heartbeat) = self.heartbeat.take() else {
            return;
        };
        heartbeat.abort();
        let (registry, instance) = (self.registry.clone(), self.instance.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = registry.deregister(&instance.service, &instance.id).await;
            });
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}
