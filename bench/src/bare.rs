//! The baselines for one request at a time: actix-web with a handler that takes the body and
//! answers 204 (one event per request), and one that answers a GET with a 302 (a tracked link's
//! redirect), on the same CPUs as the server.

use actix_web::{App, HttpResponse, HttpServer, http::header, web};

pub fn serve() -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let server = HttpServer::new(|| {
            App::new()
                .route(
                    "/l/{code}",
                    web::get().to(|code: web::Path<String>| async move {
                        HttpResponse::Found()
                            .insert_header((
                                header::LOCATION,
                                format!("https://shop.example/film?vg={code}"),
                            ))
                            .finish()
                    }),
                )
                .default_service(web::to(|_body: web::Bytes| async {
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
