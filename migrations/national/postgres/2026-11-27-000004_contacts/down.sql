DROP TABLE nurse_contacts;
