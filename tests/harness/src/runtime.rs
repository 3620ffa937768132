use std::future::Future;

/// Runs async work from the harness's synchronous entry points (`Sim::start`, drops). A fresh
/// current-thread runtime on a scoped thread works both inside a `#[tokio::test]` (where
/// `block_on` on the test's own runtime would panic) and outside any runtime.
pub(crate) fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread tokio runtime needs only a timer and an I/O driver")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
