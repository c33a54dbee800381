//! The baseline for one event per request: actix-web with a handler that takes the body and
//! answers 204, on the same CPUs as the server.

use actix_web::{App, HttpResponse, HttpServer, web};

pub fn serve() -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let server = HttpServer::new(|| {
            App::new().default_service(web::to(|_body: web::Bytes| async {
                HttpResponse::NoContent().finish()
            }))
        })
        .bind(("127.0.0.1", 0))?;
        let address = server.addrs()[0];
        println!("bare server on http://{address}");
        server.run().await
    })?;
    Ok(())
}
