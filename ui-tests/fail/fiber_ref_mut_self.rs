struct Conn;

impl Conn {
    #[loom::fiber]
    fn serve(&mut self) {}
}

fn main() {
    Conn.serve();
}
